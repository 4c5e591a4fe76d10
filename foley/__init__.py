"""foley: give silent video its sound — in sync, matching what is seen, from where it is."""

__version__ = "0.1.0"
