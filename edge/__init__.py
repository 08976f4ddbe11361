"""edge: always-on MoViNet stream video classification for Raspberry Pi-class boards."""

__version__ = "0.1.0"
