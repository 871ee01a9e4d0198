"""The scene generator's truth: what benchmarks score against."""

import geopandas as gpd
import rasterio
from rasterio.features import geometry_mask

from satcheck.synth.write import SceneSpec, write_scene


def test_truth_says_how_much_of_each_change_is_clear_of_cloud(tmp_path):
    write_scene(tmp_path / "clear", SceneSpec(seed=5, size=512, cloud=False))
    clear = gpd.read_file(tmp_path / "clear" / "truth" / "changes.gpkg")
    assert len(clear) and (clear["clear_share"] == 1.0).all()

    write_scene(tmp_path / "cloudy", SceneSpec(seed=5, size=512))
    cloudy = gpd.read_file(tmp_path / "cloudy" / "truth" / "changes.gpkg")
    with rasterio.open(tmp_path / "cloudy" / "truth" / "change_mask.tif") as src:
        seen, transform = src.read(1) > 0, src.transform
    for _, c in cloudy.iterrows():
        inside = ~geometry_mask([c.geometry], seen.shape, transform)
        assert abs(c["clear_share"] - seen[inside].mean()) < 0.02, c["label"]
    assert cloudy["clear_share"].between(0, 1).all()
    assert (cloudy["clear_share"] < 1).any()  # the cloud does cover a change here: the comparison above means something
