"""RCI: reproduced-content identification (decode, describe, recall, align)."""

__version__ = "0.1.0"
