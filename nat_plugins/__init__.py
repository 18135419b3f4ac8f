"""nat_plugins: non-autoregressive translation models for fairseq.

``import nat_plugins`` (or ``--user-dir <path of this package>``) applies the
torch/NumPy compatibility shims first, then registers every task, model,
criterion and decoding strategy.

Without fairseq installed (e.g. a GPU box used only to test the DAG
kernels) only ``nat_plugins.ops`` is usable; nothing is registered.
"""
import importlib.util

from . import compat  # noqa: F401  (must run before fairseq loads checkpoints)
from .errors import install_excepthook

__version__ = "0.1.0"

HAS_FAIRSEQ = importlib.util.find_spec("fairseq") is not None

if HAS_FAIRSEQ:
    install_excepthook()
    # Registration order matters only in that strategies must exist before
    # the task's config enumerates them.
    from .decoding import mask_predict  # noqa: E402,F401
    from .decoding import sundae_sampling  # noqa: E402,F401
    from .decoding import sunmask_sampling  # noqa: E402,F401
    from .decoding import dag_decoding  # noqa: E402,F401
    from .tasks import nat_translation  # noqa: E402,F401
    from .models import cmlm  # noqa: E402,F401
    from .criterions import cmlm_loss  # noqa: E402,F401
    from .criterions import pml_loss  # noqa: E402,F401
    from .models import sundae  # noqa: E402,F401
    from .criterions import sundae_loss  # noqa: E402,F401
    from .models import sunmask  # noqa: E402,F401
    from .criterions import sunmask_loss  # noqa: E402,F401
    from .models import dat  # noqa: E402,F401
    from .criterions import dag_loss  # noqa: E402,F401
    from .models import diffglat  # noqa: E402,F401
    from .criterions import diffglat_loss  # noqa: E402,F401
