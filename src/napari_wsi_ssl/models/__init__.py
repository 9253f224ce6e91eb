"""ResNet34 encoder, inverted-ResNet34 decoder, task heads, presets, the checkpoint format, and
the device and precision a model runs with."""

from .batch import predict_batch
from .checkpoint import Checkpoint, load_checkpoint, read_payload, save_checkpoint
from .decoder import InvertedResNetDecoder, LightSegHead
from .device import autocast_for, choose_device, cpu_has_bf16
from .net import (
    PRESETS,
    TASKS,
    WsiModel,
    build_from_arch,
    build_model,
    load_encoder_state_dict,
    make_arch,
)
from .resnet import BasicBlock, ResNetEncoder, torchvision_resnet_keys

__all__ = [
    "PRESETS",
    "TASKS",
    "BasicBlock",
    "Checkpoint",
    "InvertedResNetDecoder",
    "LightSegHead",
    "ResNetEncoder",
    "WsiModel",
    "autocast_for",
    "build_from_arch",
    "build_model",
    "choose_device",
    "cpu_has_bf16",
    "load_checkpoint",
    "load_encoder_state_dict",
    "make_arch",
    "predict_batch",
    "read_payload",
    "save_checkpoint",
    "torchvision_resnet_keys",
]
