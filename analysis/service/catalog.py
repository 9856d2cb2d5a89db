"""What can be run: experiment kinds and their config classes, methods and their typed options, datasets."""

from analysis.core.config import FinetuneConfig  # noqa: F401
from analysis.data.tasks import dataset_names, get_card  # noqa: F401
from analysis.methods.finetuning.base import FINETUNE_METHODS, option_flags  # noqa: F401
from analysis.methods.probes import PROBES  # noqa: F401
from analysis.methods.pruning import PRUNING_METHODS, PruneConfig  # noqa: F401
from analysis.runs.probe import ProbeConfig  # noqa: F401
