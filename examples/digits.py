"""A tensor model: a CNN trained on scikit-learn's 8x8 digits, taking images [N, 1, 8, 8].

Writes build/digits.pt (the state_dict), build/digits.npz (sample images, key "image": the
export sample) and build/digits-test.npz (held-out images, for the drift profile of its
outputs). Needs the torch extra. See README.md, "Your own model".
"""

from pathlib import Path

import numpy as np
import torch
from digits_net import make_net
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

build = Path("build")
build.mkdir(exist_ok=True)
digits = load_digits()
images = (digits.images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8] in 0..1
X_train, X_test, y_train, y_test = train_test_split(images, digits.target, random_state=0)
torch.manual_seed(0)
net = make_net()
optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
for _ in range(30):  # a few full-batch epochs: enough for ~95 % here
    optimiser.zero_grad()
    loss = torch.nn.functional.cross_entropy(
        net(torch.from_numpy(X_train)), torch.from_numpy(y_train)
    )
    loss.backward()
    optimiser.step()
net.eval()
with torch.no_grad():
    accuracy = (net(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean()
torch.save(net.state_dict(), build / "digits.pt")
np.savez(build / "digits.npz", image=X_train[:200])
np.savez(build / "digits-test.npz", image=X_test)
print(f"wrote {build}/digits.pt, digits.npz, digits-test.npz (test accuracy {accuracy:.1%})")
