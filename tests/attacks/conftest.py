"""A classifier trained in about a second for the attack tests: 3 classes of 12 x 12 RGB images (a bright square
in the top-left, centre or bottom-right, on noise), normalised per channel like a data module would."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

MEAN = (0.4, 0.5, 0.6)
STD = (0.2, 0.25, 0.3)
CORNERS = ((0, 0), (4, 4), (8, 8))


class TinyNet(nn.Module):
    """conv-ReLU-pool, conv (its input explained by Grad-CAM), a functional ReLU head (as DenseNet's), linear."""

    target_layer = "conv2"

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        a = self.pool(self.relu1(self.conv1(x)))
        return self.fc(F.relu(self.conv2(a)).mean((2, 3)))


def pixels(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, 3, 12, 12] pixels in [0, 1] and their labels."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    p = 0.35 * torch.rand(n, 3, 12, 12, generator=gen) + 0.1
    for i, c in enumerate(y.tolist()):
        r, q = CORNERS[c]
        p[i, :, r:r + 4, q:q + 4] += 0.45
    return p.clamp(0, 1), y


def normalise(p: torch.Tensor) -> torch.Tensor:
    return (p - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.fixture(scope="session")
def trained():
    """(net in eval mode, held-out normalised images x, labels y); clean accuracy > 95%."""
    torch.manual_seed(0)
    net = TinyNet()
    p, y = pixels(384, seed=1)
    x = normalise(p)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    for step in range(150):
        i = torch.arange(64) + 64 * (step % 6)
        loss = F.cross_entropy(net(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    for q in net.parameters():
        q.grad = None
    p_test, y_test = pixels(200, seed=2)
    x_test = normalise(p_test)
    with torch.no_grad():
        assert (net(x_test).argmax(1) == y_test).float().mean() > 0.95
    return net, x_test, y_test
