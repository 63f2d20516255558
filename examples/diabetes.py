"""A regressor that takes missing values: scikit-learn's diabetes data, HistGradientBoosting.

Writes build/diabetes.pkl (the fitted model), build/diabetes.csv (the training rows: the export
sample and the drift reference) and build/diabetes-test.csv (held-out rows, for the drift
profile of its predictions). See README.md, "Your own model".
"""

import pickle
from pathlib import Path

from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split

build = Path("build")
build.mkdir(exist_ok=True)
data = load_diabetes(as_frame=True)
X_train, X_test, y_train, _ = train_test_split(data.data, data.target, random_state=0)
model = HistGradientBoostingRegressor(max_iter=100, random_state=0).fit(X_train, y_train)
with (build / "diabetes.pkl").open("wb") as handle:
    pickle.dump(model, handle)
X_train.to_csv(build / "diabetes.csv", index=False)
X_test.to_csv(build / "diabetes-test.csv", index=False)
print(f"wrote {build}/diabetes.pkl, diabetes.csv ({len(X_train)} rows), diabetes-test.csv")
