"""A classifier with string labels: scikit-learn's iris data, labels 'setosa', 'versicolor', ...

Writes build/iris.pkl, build/iris.csv (training rows) and build/iris-test.csv (held-out rows).
See README.md, "Your own model".
"""

import pickle
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

build = Path("build")
build.mkdir(exist_ok=True)
data = load_iris(as_frame=True)
labels = data.target_names[data.target]  # strings, not 0/1/2
X_train, X_test, y_train, _ = train_test_split(data.data, labels, random_state=0)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train)
with (build / "iris.pkl").open("wb") as handle:
    pickle.dump(model, handle)
X_train.to_csv(build / "iris.csv", index=False)
X_test.to_csv(build / "iris-test.csv", index=False)
print(f"wrote {build}/iris.pkl, iris.csv ({len(X_train)} rows), iris-test.csv")
