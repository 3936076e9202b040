"""Model loading for the reference server: the built-in ``tiny`` model (``tiny.py``) and ``loader.py``.

Submodules import torch/transformers lazily; import ``reference_server.model.loader`` to load a model.
"""
