"""``mae``: Masked Autoencoders, a ViT encodes the visible 25% of patches and a light decoder
reconstructs the (per-patch normalised) pixels of the masked ones.

Paper: Kaiming He, Xinlei Chen, Saining Xie, Yanghao Li, Piotr Dollar, Ross Girshick, "Masked
Autoencoders Are Scalable Vision Learners", CVPR 2022, arXiv:2111.06377.
Official code: https://github.com/facebookresearch/mae (``models_mae.py``, ``main_pretrain.py``,
``PRETRAIN.md``).
Built on lightly: ``MaskedVisionTransformerTIMM`` (encoder forward on kept tokens only, MAE
weight initialisation, fixed 2-D sine-cosine positional embedding),
``MaskedVisionTransformerDecoderTIMM`` (decoder blocks with a learned mask token and fixed
sine-cosine positions), ``random_token_mask``, ``patchify``, ``get_at_index``,
``set_at_index``, ``repeat_token``; the timm ViT of :func:`ssl_bench.backbones.vit_encoder`.

Facts used (paper Sec. 3-4 and official code):
* random masking of 75% of the patches per image (uniform, without replacement); the encoder
  sees only the visible patches (plus the class token), no mask tokens;
* decoder: linear embedding to the decoder width, mask tokens at the masked positions, fixed
  sine-cosine positions, 8 blocks of width 512 (16 heads), linear prediction of p*p*3 pixels;
* loss: mean squared error on the masked patches only, with normalised pixel targets
  (``norm_pix_loss``: each target patch minus its mean, divided by sqrt(var + 1e-6), var being
  torch's unbiased variance as in ``models_mae.py``);
* augmentation: random resized crop (scale 0.2-1) and horizontal flip only;
* AdamW, base lr 1.5e-4 with lr = blr x B / 256, betas (0.9, 0.95), weight decay 0.05, batch
  4096, 40 warm-up epochs, cosine decay, 800 epochs (ViT-B/16, 224 px);
* downstream, the encoder is the ViT without masking (all patches).

Departures:
* CT pools (lateralized data; :class:`ssl_bench.api.AugmentPolicy`): no horizontal flips.
* paper profile: batch 256 on one device (lr by the paper's own scaling rule: 1.5e-4 x 256 /
  256); AdamW betas are the harness default (0.9, 0.999) instead of (0.9, 0.95);
* pixel targets are patches of the encoder-normalised image (ImageNet mean/std), as in the
  official code where the data loader normalises;
* ``smoke``/``cpu``: small ViTs (vit-micro / vit-tiny with 8 px patches) and a light decoder
  (1-2 blocks of width 32-128) with lr 1e-3 for a short CPU run.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightly.models import utils
from lightly.models.modules.masked_vision_transformer_decoder_timm import (
    MaskedVisionTransformerDecoderTIMM,
)
from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM
from torch import nn
from torchvision.transforms import v2

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import ViTEncoder, vit_encoder
from ssl_bench.default_plugins.methods.metas import MAE_META
from ssl_bench.transforms import FrameViews


def mae_loss(predictions: torch.Tensor, patches: torch.Tensor, idx_mask: torch.Tensor,
             norm_pix_loss: bool = True) -> torch.Tensor:
    """MSE between ``predictions`` (B, M, D) and the target ``patches`` (B, N, D) at the masked
    patch indices ``idx_mask`` (B, M); visible patches do not enter the loss."""
    target = utils.get_at_index(patches, idx_mask)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    return ((predictions - target) ** 2).mean()


class MAEConfig(MethodConfig):
    vit_size: Literal["vit-micro", "vit-tiny", "vit-small", "vit-base"] = "vit-base"
    patch_size: int = 16
    mask_ratio: float = 0.75
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    norm_pix_loss: bool = True
    min_crop_scale: float = 0.2


class MAEModel(nn.Module):
    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.encoder = vit_encoder(config.vit_size, config.image_size, config.patch_size)
        # lightly's masked wrapper around the *same* timm ViT (it also applies MAE's weight
        # initialisation and fixed sine-cosine positions). It is kept out of the module tree so
        # that the checkpoint stores every encoder weight once, under ``encoder.vit``; its own
        # mask token is unused (the MAE encoder drops masked patches).
        self.__dict__["masked_vit"] = MaskedVisionTransformerTIMM(vit=self.encoder.vit)
        self.patch_size = config.patch_size
        self.num_patches = self.encoder.vit.patch_embed.num_patches
        self.decoder_embed = nn.Linear(self.encoder.embed_dim, config.decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=self.num_patches, embed_dim=config.decoder_dim,
            depth=config.decoder_depth, num_heads=config.decoder_heads, num_prefix_tokens=1)
        self.decoder_pred = nn.Linear(config.decoder_dim, config.patch_size ** 2 * 3)
        nn.init.xavier_uniform_(self.decoder_embed.weight)
        nn.init.zeros_(self.decoder_embed.bias)
        nn.init.xavier_uniform_(self.decoder_pred.weight)
        nn.init.zeros_(self.decoder_pred.bias)

    @property
    def sequence_length(self) -> int:
        return self.num_patches + 1  # patches + class token

    def reconstruct(self, x: torch.Tensor, idx_keep: torch.Tensor, idx_mask: torch.Tensor
                    ) -> torch.Tensor:
        """Predicted pixels (B, M, p*p*3) of the masked tokens ``idx_mask`` of normalised
        images ``x``, seeing only the tokens ``idx_keep`` (indices include the class token 0)."""
        masked_vit: MaskedVisionTransformerTIMM = self.__dict__["masked_vit"]
        features = masked_vit.encode(images=x, idx_keep=idx_keep)
        tokens = utils.repeat_token(self.decoder.mask_token, (x.shape[0], self.sequence_length))
        tokens = utils.set_at_index(tokens, idx_keep, self.decoder_embed(features).type_as(tokens))
        decoded = self.decoder(tokens)
        return self.decoder_pred(utils.get_at_index(decoded, idx_mask))


class MAE(Method):
    """MAE (He et al., CVPR 2022) on a timm ViT."""

    meta = MAE_META
    Config = MAEConfig
    # cpu: max_steps sized to ~25 CPU-seconds of pretraining (step time measured on 1 thread)
    profiles = {
        "smoke": {"image_size": 32, "batch_size": 8, "max_steps": 3, "lr": 1e-3,
                  "vit_size": "vit-micro", "patch_size": 8, "decoder_dim": 32,
                  "decoder_depth": 1, "decoder_heads": 2},
        "cpu": {"image_size": 64, "batch_size": 32, "max_steps": 50, "lr": 1e-3,
                "weight_decay": 0.05, "vit_size": "vit-tiny", "patch_size": 8,
                "decoder_dim": 128, "decoder_depth": 2, "decoder_heads": 4},
        "paper": {"image_size": 224, "batch_size": 256, "epochs": 800, "num_workers": 8,
                  "optimizer": "adamw",
                  "lr": 1.5e-4, "weight_decay": 0.05, "warmup_epochs": 40,
                  "vit_size": "vit-base", "patch_size": 16, "decoder_dim": 512,
                  "decoder_depth": 8, "decoder_heads": 16},
    }

    def __init__(self, config: MethodConfig, context: Any) -> None:
        super().__init__(config, context)
        self.config: MAEConfig

    def build(self) -> nn.Module:
        return MAEModel(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        c = self.config
        flip = [v2.RandomHorizontalFlip()] if pool.augment_policy.horizontal_flip else []
        view = v2.Compose([
            v2.RandomResizedCrop(c.image_size, scale=(c.min_crop_scale, 1.0),
                                 interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            *flip,
            v2.ToDtype(torch.float32, scale=True),
        ])
        return FrameViews(pool, [view])

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        assert isinstance(model, MAEModel)
        (images,) = batch
        x = model.encoder.normalise(images)
        idx_keep, idx_mask = utils.random_token_mask(
            (x.shape[0], model.sequence_length), mask_ratio=self.config.mask_ratio,
            device=x.device)
        predictions = model.reconstruct(x, idx_keep, idx_mask)
        patches = utils.patchify(x, model.patch_size)
        # token indices count the class token at 0; patch indices start at 0
        loss = mae_loss(predictions, patches, idx_mask - 1, self.config.norm_pix_loss)
        return {"loss": loss}

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, MAEModel)
        encoder: ViTEncoder = model.encoder
        return encoder
