"""Long-CLIP's ablation reproduced at toy scale on procedural scenes, on a CPU.

``benchmarks/reproduce.py`` runs it; the pieces are importable::

    from longclip_diffusers.reproduction import make_scene, run_experiment, QUICK_CONFIG
"""

from .claims import Claim, check_claims
from .evaluate import METRICS, evaluate_on_scenes
from .experiment import (
    ARMS,
    QUICK_CONFIG,
    ExperimentConfig,
    ExperimentResult,
    FinetuneConfig,
    finetune_arguments,
    run_experiment,
)
from .pretrain import PretrainConfig, build_base, pretrain_base
from .report import write_results
from .scene_dataset import held_out_scenes, write_scene_dataset
from .scenes import Scene, SceneObject, iter_scenes, make_scene
from .schedule import Schedule

__all__ = [
    "ARMS",
    "METRICS",
    "QUICK_CONFIG",
    "Claim",
    "ExperimentConfig",
    "ExperimentResult",
    "FinetuneConfig",
    "PretrainConfig",
    "Scene",
    "SceneObject",
    "Schedule",
    "build_base",
    "check_claims",
    "evaluate_on_scenes",
    "finetune_arguments",
    "held_out_scenes",
    "iter_scenes",
    "make_scene",
    "pretrain_base",
    "run_experiment",
    "write_results",
    "write_scene_dataset",
]
