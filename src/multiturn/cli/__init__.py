"""The command-line face: `multiturn chat`, `conversations`, `models`."""
