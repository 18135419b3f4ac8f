"""nat_plugins: non-autoregressive translation models for fairseq.

``import nat_plugins`` (or ``--user-dir <path of this package>``) applies the
torch/NumPy compatibility shims first, then registers every task, model,
criterion and decoding strategy.
"""
from . import compat  # noqa: F401  (must run before fairseq loads checkpoints)
from .errors import install_excepthook

install_excepthook()

from . import decoding  # noqa: E402,F401
from .decoding import mask_predict  # noqa: E402,F401
from .tasks import nat_translation  # noqa: E402,F401
from .models import cmlm  # noqa: E402,F401
from .criterions import cmlm_loss  # noqa: E402,F401

__version__ = "0.1.0"
