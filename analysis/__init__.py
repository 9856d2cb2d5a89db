"""PruneScope backend: compress and fine-tune pre-trained transformers, and measure what they lose."""

__version__ = "0.1.0"
# Bumped only when a change alters the numbers a run produces; part of every run id.
CODE_VERSION = "2"  # 2: the resolved precision is part of every run id (issue 14)
