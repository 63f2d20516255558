"""A small CNN on 8x8 images [N, 1, 8, 8]: the module `onnxq export torch` imports (digits.py)."""

import torch


class DigitsNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)
        )
        self.classify = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classify(torch.flatten(self.features(image), 1))  # logits


def make_net() -> DigitsNet:
    return DigitsNet()
