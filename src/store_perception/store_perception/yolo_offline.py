"""Keep ultralytics offline: no settings sync, no font, weight or AMP-check downloads.

Call :func:`ultralytics_offline` before the first ``import ultralytics`` (it sets the
environment ultralytics reads at import), then use the module it returns. Weights are never
fetched by name: the detector loads a file path, training builds the model from a YAML.
"""
from __future__ import annotations

import os
import pathlib
import tempfile


def ultralytics_offline(config_dir: str | pathlib.Path | None = None):
    """Set ultralytics up to never touch the network; returns the ``ultralytics`` module."""
    os.environ['YOLO_OFFLINE'] = '1'               # ultralytics.utils.is_online() -> False
    os.environ.setdefault('YOLO_VERBOSE', 'False')
    if config_dir is None:
        config_dir = pathlib.Path(tempfile.gettempdir()) / f'store-ultralytics-{os.getuid()}'
    os.environ.setdefault('YOLO_CONFIG_DIR', str(config_dir))   # settings.json lives here
    pathlib.Path(os.environ['YOLO_CONFIG_DIR']).mkdir(parents=True, exist_ok=True)
    import ultralytics
    from ultralytics.utils import SETTINGS
    if SETTINGS.get('sync', False):
        SETTINGS.update({'sync': False})             # no analytics events
    # fonts: only used to draw labels on plots; never download one
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.checks as checks
    import ultralytics.utils.plotting as plotting

    def no_font(font='Arial.ttf'):
        return None
    for mod in (data_utils, checks, plotting):
        if hasattr(mod, 'check_font'):
            mod.check_font = no_font
    # the AMP check downloads a reference model on CUDA; assume AMP works there instead
    import ultralytics.engine.trainer as trainer
    import torch

    def amp_ok(model):
        return next(model.parameters()).device.type == 'cuda' and torch.cuda.is_available()
    trainer.check_amp = amp_ok
    return ultralytics
