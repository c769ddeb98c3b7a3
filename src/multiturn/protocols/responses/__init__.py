"""The Responses and Conversations APIs: wire models (``wire``), pure translation
(``translate``) and the event-stream encoder (``stream``)."""
