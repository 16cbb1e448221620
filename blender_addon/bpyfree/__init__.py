"""The add-on's bpy-free, torch-free half: the backend client (client, over one process's session),
the add-on's one backend and what it is started with (backend_process), mesh encoding for the wire
(wire), finding the backend, models and a Python with torch on disk (locate) and installing such a
Python environment (installer).

Nothing in this package may import bpy or torch: plain pytest, bench scripts and build_addon.py
import it outside Blender, and Blender's Python imports it without torch.
"""
