"""Wire protocols: pure translation between wire formats and the canonical types.

Each subpackage (``openai_chat``...) turns request bodies into ``multiturn.types`` values and
canonical results back into response bytes. Nothing here does I/O; ``sse`` holds the
Server-Sent Events framing and parsing shared by every streaming protocol.
"""
