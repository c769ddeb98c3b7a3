"""Evaluation harnesses run by ``multiturn bench``: what the context policies keep per token
sent (``memory``) and how much of each prompt the backend reuses from its cache (``cache``)."""
