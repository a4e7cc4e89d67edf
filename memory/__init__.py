"""Experiential knowledge: a Chroma-backed memory, reflection prompts and their parser."""

from memory.store import Item, Memory

__all__ = ["Item", "Memory"]
