"""Request-time fit parameters and their limits, defined once for the CLI, the server and backend/fit.py.

Kept free of torch (like protocol.py) so the server can validate requests before the model is imported.
"""

FIT_MODES = ("encoder", "latent", "full")
SHARED_DECODER_FITS = ("encoder", "latent")  # interpolate/variations keep the model's own decoder
MIN_FIT_STEPS, MAX_FIT_STEPS = 1, 5000
DEFAULT_FIT_STEPS = {"encoder": 0, "latent": 100, "full": 200}
