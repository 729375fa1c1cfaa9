# The eval layer of hildanext (see the layer table in DESIGN.md).
# Its modules are imported by name; this file imports nothing.
# Entry points: the modules of this folder.
