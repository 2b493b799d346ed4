"""r1-trl: the DeepSeek-R1 pipeline on top of TRL."""

__version__ = "0.1.0"
