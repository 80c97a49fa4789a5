"""Stand-in for ``comfy.model_patcher`` (ComfyUI v0.3.64): the ``ModelPatcher`` a CLIP holds.

Mirrors: ``patches`` maps a state-dict key to a list of ``(strength_patch, value, strength_model,
offset, function)``; ``add_patches`` takes keys (or ``(key, offset[, function])`` tuples) that are
in the model's state dict and returns them; ``clone`` shares the model and the weight backup and
copies every patch list; ``get_key_patches`` gives each key ``[(original weight, convert_func),
*patches]``, the original even while the model is patched. The other patcher state (hooks, object
patches, wrappers, ...) is held in attributes of the real names, empty unless a test fills them.
Only ``("diff", (delta,))`` values are applied, as ComfyUI applies them:
``weight * strength_model + strength_patch * delta``.
"""

from __future__ import annotations

import uuid

import torch


def _same(weight, **kwargs):
    return weight


class ModelPatcher:
    def __init__(self, model):
        self.model = model
        self.patches: dict = {}
        self.backup: dict = {}
        self.object_patches: dict = {}
        self.weight_wrapper_patches: dict = {}
        self.model_options: dict = {"transformer_options": {}}
        self.hook_patches: dict = {}
        self.forced_hooks = None
        self.wrappers: dict = {}
        self.callbacks: dict = {}
        self.injections: dict = {}
        self.additional_models: dict = {}
        self.attachments: dict = {}
        self.patches_uuid = uuid.uuid4()

    def clone(self) -> ModelPatcher:
        n = ModelPatcher(self.model)
        n.patches = {key: list(patches) for key, patches in self.patches.items()}
        n.backup = self.backup
        n.object_patches = dict(self.object_patches)
        n.weight_wrapper_patches = dict(self.weight_wrapper_patches)
        n.model_options = {"transformer_options": dict(self.model_options["transformer_options"])}
        n.hook_patches = dict(self.hook_patches)
        n.forced_hooks = self.forced_hooks
        n.patches_uuid = self.patches_uuid
        return n

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        state = self.model.state_dict()
        accepted = []
        for k, value in patches.items():
            key, offset, function = (
                (k, None, None) if isinstance(k, str) else (k[0], k[1], k[2] if len(k) > 2 else None)
            )
            if key in state:
                accepted.append(k)
                self.patches.setdefault(key, []).append((strength_patch, value, strength_model, offset, function))
        self.patches_uuid = uuid.uuid4()
        return accepted

    def get_key_patches(self, filter_prefix=None):
        out = {}
        for key, weight in self.model.state_dict().items():
            if filter_prefix is not None and not key.startswith(filter_prefix):
                continue
            original = self.backup.get(key, weight)
            out[key] = [(original, _same), *self.patches.get(key, [])]
        return out

    @torch.no_grad()
    def patch_model(self):
        params = dict(self.model.named_parameters())
        params.update(dict(self.model.named_buffers()))
        for key, patches in self.patches.items():
            target = params[key]
            self.backup.setdefault(key, target.detach().clone())
            weight = self.backup[key].clone()
            for strength_patch, value, strength_model, _offset, _function in patches:
                kind, (delta,) = value
                if kind != "diff":
                    raise NotImplementedError(f"the stand-in applies 'diff' patches only, not {kind!r}")
                weight = weight * strength_model + strength_patch * delta.to(weight.dtype)
            target.copy_(weight)

    @torch.no_grad()
    def unpatch_model(self):
        params = dict(self.model.named_parameters())
        for key in list(self.backup):
            params[key].copy_(self.backup.pop(key))
