"""OpenAI-compatible chat completions (Model Studio's compatible mode): wire models and
pure translation to and from the canonical types."""
