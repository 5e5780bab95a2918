"""load_cars196: cars_annos.mat read as the real one is laid out, its class split, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from lookalike.data.cars196 import find_cars_annotations, load_cars196
from lookalike.errors import DataError

from ..benchmark_layouts import CARS_NAMES, cars_annotations, cell_array, write_cars


@pytest.fixture
def cars(tmp_path: Path) -> Path:
    return write_cars(tmp_path / "cars")


def test_labels_names_and_class_split(cars: Path) -> None:
    collection = load_cars196(cars)
    assert collection.class_names == list(CARS_NAMES)
    # image i has class 1 + i % 6 (label = class - 1), in the file's image order
    np.testing.assert_array_equal(collection.labels, np.arange(18) % 6)
    assert Path(collection.source(7)) == cars / "car_ims" / "000008.jpg"
    # classes 1-3 train, 4-6 test, whatever the annotations' own "test" flag says
    expected = np.where(collection.labels < 3, "train", "test")
    np.testing.assert_array_equal(collection.splits, expected)
    assert set(load_cars196(cars, "test").labels) == {3, 4, 5}


def test_folder_or_the_mat_file(cars: Path) -> None:
    mat = cars / "cars_annos.mat"
    assert find_cars_annotations(cars) == mat and find_cars_annotations(mat) == mat
    assert find_cars_annotations(cars / "car_ims") is None
    assert len(load_cars196(mat, "train")) == 9


def test_missing_variable_or_field(cars: Path) -> None:
    mat = cars / "cars_annos.mat"
    annotations = cars_annotations(["car_ims/000001.jpg"], [1])
    savemat(mat, {"annotations": annotations})
    with pytest.raises(DataError, match=r"cars_annos\.mat: no 'class_names' variable"):
        load_cars196(cars)
    savemat(mat, {"annotations": cars_annotations(["car_ims/000001.jpg"], [1], drop=("class",)),
                  "class_names": cell_array(CARS_NAMES)})
    with pytest.raises(DataError, match="'annotations' lacks the field\\(s\\) class"):
        load_cars196(cars)


def test_class_outside_class_names(cars: Path) -> None:
    savemat(cars / "cars_annos.mat", {
        "annotations": cars_annotations(["car_ims/000001.jpg", "car_ims/000002.jpg"], [1, 7]),
        "class_names": cell_array(CARS_NAMES)})
    with pytest.raises(DataError,
                       match=r"cars_annos\.mat: annotation 2 has class 7, outside 1\.\.6"):
        load_cars196(cars)


def test_not_a_mat_file(cars: Path) -> None:
    (cars / "cars_annos.mat").write_bytes(b"not a MATLAB file at all" * 8)
    with pytest.raises(DataError, match=r"cars_annos\.mat: not a readable MATLAB file"):
        load_cars196(cars)


def test_missing_image_is_named(cars: Path) -> None:
    (cars / "car_ims" / "000003.jpg").unlink()
    with pytest.raises(DataError, match=r"cars_annos.mat \(annotation 3\): no such image file "
                                        r".*000003.jpg$"):
        load_cars196(cars)
