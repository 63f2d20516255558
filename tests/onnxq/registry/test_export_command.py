"""`onnxq export sklearn` and `onnxq validate`: a pickled pipeline becomes a checked ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from onnxq.models.manifest import MODEL_FILE
from onnxq.registry.export_dir import EXPORT_FILE
from tests.support.lifecycle import (
    breast_cancer,
    export_pipeline,
    fitted_pipeline,
    pickle_to,
    run_cli,
    write_csv,
)


def test_a_pipeline_exports_with_named_float32_features_and_probabilities_as_a_tensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, _ = breast_cancer()
    out = export_pipeline(tmp_path, capsys)

    session = ort.InferenceSession(str(out / MODEL_FILE), providers=["CPUExecutionProvider"])
    [model_input] = session.get_inputs()
    outputs = {output.name: output for output in session.get_outputs()}
    assert (model_input.name, model_input.type) == ("input", "tensor(float)")
    assert model_input.shape[1] == 30
    assert outputs["probabilities"].type == "tensor(float)"  # a tensor, not a ZipMap sequence
    assert outputs["probabilities"].shape[1] == 2
    labels, probabilities = session.run(
        ["label", "probabilities"], {"input": X.to_numpy(dtype=np.float32)}
    )
    pipeline = fitted_pipeline()
    X32 = X.astype(np.float32)
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(X32), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(labels, pipeline.predict(X32))
    record = json.loads((out / EXPORT_FILE).read_text())
    assert record["features"] == list(X.columns)
    assert record["framework"] == "scikit-learn"
    assert record["class_labels"] == [0, 1]
    assert record["sample"]["rows"] == 150
    assert 0 <= record["parity"]["max_abs_diff"] <= 1e-5
    assert record["parity"]["rows"] == 150


def test_export_warns_that_it_reads_a_pickle_before_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, _ = breast_cancer()
    estimator = pickle_to(tmp_path / "model.pkl", fitted_pipeline())
    sample = write_csv(tmp_path / "sample.csv", X.iloc[:20])

    code, out, err = run_cli(
        "export", "sklearn", estimator, "--sample", sample, "--out", tmp_path / "out", capsys=capsys
    )

    assert code == 0
    assert "WARNING: onnxq is reading" in err
    assert "only place onnxq ever reads a pickle" in err
    assert "PASS" in out


def test_validate_reports_the_parity_of_an_export_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = export_pipeline(tmp_path, capsys)

    code, stdout, _ = run_cli("validate", out, "--sample", tmp_path / "sample.csv", capsys=capsys)

    assert code == 0
    assert "PASS: ONNX vs source model on 150 sample rows (tolerance 1e-05)" in stdout
    assert "probabilities: max |diff| = " in stdout
    assert "label: 0 row(s) differ" in stdout


def test_validate_fails_when_the_tolerance_is_below_the_measured_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = export_pipeline(tmp_path, capsys)
    measured = json.loads((out / EXPORT_FILE).read_text())["parity"]["max_abs_diff"]
    assert measured > 0, "logistic regression in float32 is never bit-exact"

    code, stdout, _ = run_cli("validate", out, "--tolerance", measured / 2, capsys=capsys)

    assert code == 1
    assert stdout.startswith("FAIL")
    assert "rows over the tolerance" in stdout


def test_validate_refuses_a_sample_other_than_the_one_recorded_at_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, _ = breast_cancer()
    out = export_pipeline(tmp_path, capsys)
    other = write_csv(tmp_path / "other.csv", X.iloc[150:200])

    code, _, err = run_cli("validate", out, "--sample", other, capsys=capsys)

    assert code == 1
    assert "is not the sample the source model was run on at export" in err


def test_a_sample_whose_columns_are_not_the_estimators_features_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, _ = breast_cancer()
    estimator = pickle_to(tmp_path / "model.pkl", fitted_pipeline())
    shuffled = write_csv(tmp_path / "sample.csv", X.iloc[:20, ::-1])

    code, _, err = run_cli(
        "export",
        "sklearn",
        estimator,
        "--sample",
        shuffled,
        "--out",
        tmp_path / "out",
        capsys=capsys,
    )

    assert code == 1
    assert "are not the estimator's features" in err
    assert not (tmp_path / "out").exists()


def flip_prone_data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """One feature whose training values 1.0 and 1.0 + 1e-7 differ in float64, not in float32.

    The tree splits halfway, at 1.0 + 5e-8. A sample value 1.0 + 5.5e-8 is above the split in
    float64 but rounds to 1.0 in float32, below it: the float32 service answers otherwise.
    """
    rng = np.random.default_rng(0)
    low, high = 1.0, 1.0 + 1e-7
    x = np.where(rng.random(400) < 0.5, low, high)
    noise = rng.normal(size=400)
    X = pd.DataFrame({"x": x, "noise": noise})
    y = (x > low).astype(int)
    sample = pd.DataFrame({"x": [low, high, 1.0 + 5.5e-8, 1.0 + 5.6e-8], "noise": [0.0] * 4})
    return X, y, sample


def test_a_tree_model_warns_about_rows_that_flip_between_float64_and_float32(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, y, sample = flip_prone_data()
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y)
    assert model.predict(sample).tolist()[2:] == [1, 1]  # float64: above the split
    estimator = pickle_to(tmp_path / "hgb.pkl", model)
    sample_file = write_csv(tmp_path / "sample.csv", sample)

    code, out, err = run_cli(
        "export",
        "sklearn",
        estimator,
        "--sample",
        sample_file,
        "--out",
        tmp_path / "out",
        capsys=capsys,
    )

    assert code == 0, out + err  # a warning: ONNX matches what the float32 service will see
    assert "2 row(s) give another output when their float64 values are rounded to float32" in err
    assert ": 2, 3." in err
    record = json.loads((tmp_path / "out" / EXPORT_FILE).read_text())
    assert record["tree_model"] is True
    assert record["parity"]["threshold_flip_rows"] == [2, 3]


def test_an_export_that_fails_parity_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, _ = breast_cancer()
    estimator = pickle_to(tmp_path / "model.pkl", fitted_pipeline())
    sample = write_csv(tmp_path / "sample.csv", X.iloc[:50])
    out = tmp_path / "out"

    code, stdout, _ = run_cli(
        "export", "sklearn", estimator, "--sample", sample, "--out", out, "--tolerance", "1e-15",
        capsys=capsys,
    )  # fmt: skip

    assert code == 1
    assert stdout.startswith("FAIL") and f"nothing written to {out}" in stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.pkl", "sample.csv"]


def test_a_string_label_classifier_exports_with_its_class_names_and_registers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    labels = iris.target_names[iris.target]
    estimator = pickle_to(
        tmp_path / "iris.pkl", LogisticRegression(max_iter=1000).fit(iris.data, labels)
    )
    sample = write_csv(tmp_path / "iris.csv", iris.data)
    out = tmp_path / "export"
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("ONNXQ_MODEL_DIR", str(models))

    exported = run_cli(
        "export", "sklearn", estimator, "--sample", sample, "--out", out,
        "--class-names", "Setosa,Versicolour,Virginica", capsys=capsys,
    )  # fmt: skip
    registered = run_cli("register", "iris", out / MODEL_FILE, "--reference", sample, capsys=capsys)

    assert exported[0] == 0, exported[2]
    record = json.loads((out / EXPORT_FILE).read_text())
    assert record["class_labels"] == ["setosa", "versicolor", "virginica"]
    assert record["class_names"] == ["Setosa", "Versicolour", "Virginica"]
    assert registered[0] == 0, registered[2]
    assert f"registered iris version 1 in {models / 'iris' / '1'}" in registered[1]


def test_an_estimator_that_is_neither_classifier_nor_regressor_is_refused_leaving_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sklearn.cluster import KMeans

    X, _ = breast_cancer()
    estimator = pickle_to(tmp_path / "kmeans.pkl", KMeans(2, n_init=2, random_state=0).fit(X))
    sample = write_csv(tmp_path / "sample.csv", X.iloc[:20])

    code, _, err = run_cli(
        "export", "sklearn", estimator, "--sample", sample, "--out", tmp_path / "out",
        capsys=capsys,
    )  # fmt: skip

    assert code == 1
    assert "neither a fitted classifier nor a regressor" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kmeans.pkl", "sample.csv"]


def test_an_export_replaces_an_earlier_one_whole_but_never_another_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = export_pipeline(tmp_path, capsys)
    (out / "stale.txt").write_text("from before")
    export_pipeline(tmp_path, capsys)  # the same --out again
    assert not (out / "stale.txt").exists()

    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("keep me")
    X, _ = breast_cancer()
    code, _, err = run_cli(
        "export", "sklearn", tmp_path / "pipeline.pkl", "--sample",
        write_csv(tmp_path / "s.csv", X.iloc[:20]), "--out", elsewhere, capsys=capsys,
    )  # fmt: skip
    assert code == 1 and "is not an export directory" in err
    assert (elsewhere / "notes.txt").read_text() == "keep me"
