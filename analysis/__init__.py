"""PruneScope backend: compress and fine-tune pre-trained transformers, and measure what they lose."""

__version__ = "0.1.0"
# Bumped when a change alters the numbers a run produces or how its id is computed; part of every run id.
CODE_VERSION = "3"  # 3: method options validated and normalised before hashing: one id per config (issue 15)
