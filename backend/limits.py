"""Request limits and choice lists, defined once; backend/options.py turns them into options for every layer.

Kept free of torch (like protocol.py) so the server can validate requests, and the CLI parse its
arguments, before the model is imported.
"""

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRIOR_KINDS = ("auto", "normal", "gmm")
MIN_RESOLUTION, MAX_RESOLUTION = 12, 200_000
MAX_COUNT = 256  # shapes per sample / variations request (memory is capped separately: service.MAX_OUTPUT_VERTICES)
MIN_STEPS, MAX_STEPS = 2, 256  # interpolation steps
MAX_SEED = 2**32 - 1
MAX_TEMPERATURE = 10.0  # latent spread of a sample (1 = the prior as fitted)
MAX_SPREAD = 10.0  # how far variations stray, in prior standard deviations
MIN_EPOCHS, MAX_EPOCHS = 1, 100_000  # passes over the data in a (fine-)tune
SIZE_MODES = ("real", "unit")  # samples at their family's typical size in metres, or in the unit ball
DEFAULT_SIZE = "real"

FIT_MODES = ("encoder", "latent", "full")
SHARED_DECODER_FITS = ("encoder", "latent")  # interpolate/variations keep the model's own decoder
MIN_FIT_STEPS, MAX_FIT_STEPS = 1, 5000
DEFAULT_FIT_STEPS = {"encoder": 0, "latent": 100, "full": 200}

# Files read from a model folder or a data folder (backend/regular.py); the weights' limit is derived from
# the largest network in backend/checkpoints.py.
MAX_MESH_FILE_BYTES = 1 << 30
MAX_JSON_FILE_BYTES = 64 << 20
MAX_PACK_BYTES = 8 << 30  # a point pack (backend/data/packs.py) is read whole into memory

# What a patch model's shapes come back as: auto = "closed" for patch-template models, the template mesh (one
# closed sphere already) for sphere models; "closed" = one watertight mesh (backend/surface.py); "patches" =
# the decoded template mesh as it is (template UVs apply).
SURFACE_CHOICES = ("auto", "closed", "patches")
DEFAULT_SURFACE = "auto"
MIN_FACE_BUDGET, MAX_FACE_BUDGET = 500, 200_000  # faces of a closed surface (its voxel grid grows with it)
DEFAULT_FACE_BUDGET = 20_000

# The Shape Explorer (backend/directions.py): each model offers up to MAX_DIRECTIONS main directions of its
# latent space, and a move along one goes at most MAX_AMOUNT of the training codes' standard deviations.
MAX_DIRECTIONS = 8
MAX_AMOUNT = 3.0
MAX_MOVES = 64  # moves in one explore request (a direction may repeat: its amounts add)
MAX_FRAME = 1e6  # |scale| and |offset| of an explored shape's frame (metres)
