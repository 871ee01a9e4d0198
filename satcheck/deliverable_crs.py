"""The CRS of deliverables: change polygons, patches and every file made from them.

``output.crs`` in the configuration names it. By default (null) it is the CGCS2000 3-degree Gauss-Krüger zone
(EPSG:4534-4554, the zones of China's surveys and land registers) at the centre of the later imagery when that
centre lies in China, whatever CRS the tiles come in (WGS 84 / UTM imagery of Hong Kong gives EPSG:4547, not
EPSG:32650); elsewhere the later tile's projected CRS (:attr:`satcheck.tiles.TileInfo.vector_crs`: its own CRS when
projected in metres, else the UTM zone). A run spanning two zones is made in the zone of its centre.

"In China" is tested against a coarse outline of China's land (Natural Earth 1:110m admin 0, public domain,
China and Taiwan, widened by 0.3° for coastal islands and simplified to 0.1°), so near a land border a few
kilometres of a neighbour count as China.
"""

from __future__ import annotations

from typing import Sequence

import shapely
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from satcheck.tiles import gauss_kruger_3

# lon,lat pairs of each outline (EPSG:4326).
_OUTLINES = (
    """
    80.4,43.3 79.7,44.8 79.8,45.1 82.2,45.8 83.1,47.6 85.1,47.3 85.4,47.6 85.6,48.7 86.5,48.8 87.2,49.5 87.7,49.6
    88.0,49.5 88.3,48.8 89.0,48.3 90.4,47.9 91.2,47.1 91.3,46.8 90.9,45.8 91.1,45.6 93.5,45.3 94.8,44.6 95.4,44.5
    96.0,43.5 96.5,43.0 99.5,42.8 100.9,43.0 101.9,42.8 103.4,42.2 104.6,42.2 105.0,41.9 106.0,42.4 107.7,42.8
    109.2,42.8 110.3,43.1 111.4,43.9 111.1,44.5 111.8,45.4 113.4,45.1 114.4,45.6 115.8,46.0 116.6,46.6 117.3,47.0
    119.3,47.1 118.1,47.7 117.3,47.4 116.3,47.5 115.7,47.4 115.2,48.0 115.2,48.2 116.5,50.2 117.9,49.8 119.0,50.3
    119.1,50.8 120.0,51.9 120.4,52.1 120.4,52.3 119.9,52.6 120.0,53.0 120.9,53.5 122.2,53.7 123.6,53.8 125.2,53.4
    126.1,53.0 127.2,51.5 127.9,50.0 129.6,49.7 130.8,48.9 131.2,48.1 132.4,48.1 133.3,48.5 135.0,48.8 135.3,48.5
    134.7,47.4 134.4,47.0 134.0,46.0 133.3,44.9 131.9,45.0 131.4,44.8 131.6,44.1 131.4,42.9 131.3,42.7 130.9,42.6
    130.8,42.1 130.5,42.1 130.0,42.5 129.7,42.2 128.4,41.8 128.5,41.4 128.3,41.2 127.3,41.2 126.9,41.4 126.4,40.9
    125.2,40.3 124.4,39.7 123.0,39.4 122.2,38.9 121.1,38.6 120.8,38.8 120.8,39.1 121.2,39.4 121.1,39.9 121.7,40.4
    121.6,40.6 119.8,39.7 119.2,39.0 118.2,38.9 117.9,38.7 118.2,38.3 119.0,38.1 119.2,37.7 119.7,37.5 120.8,38.2
    121.8,37.8 122.5,37.7 122.6,37.6 122.8,37.0 122.7,36.7 121.3,36.4 120.8,35.9 119.9,35.4 119.6,35.0 120.5,34.6
    120.9,33.5 122.2,31.8 122.2,30.8 121.7,30.5 122.4,29.9 122.0,28.1 121.3,27.9 118.9,24.3 117.4,23.4 116.0,22.5
    114.9,22.4 114.2,21.9 113.8,22.1 113.3,21.8 111.9,21.3 111.0,21.1 110.8,20.4 111.0,20.2 111.3,19.6 110.8,19.1
    110.6,18.5 109.5,17.9 108.5,18.2 108.4,18.5 108.4,19.5 109.0,20.1 109.6,20.2 109.3,20.9 109.4,21.2 108.5,21.4
    108.0,21.3 106.9,21.5 106.3,22.1 106.4,22.6 105.7,22.7 105.3,23.0 104.5,22.5 102.8,22.4 102.0,22.1 102.1,21.2
    101.8,20.9 101.2,20.9 100.9,21.4 100.4,21.3 99.1,21.9 98.9,22.2 99.1,22.8 98.7,23.0 98.4,23.7 97.6,23.6
    97.3,23.9 97.5,25.2 98.4,26.1 98.4,27.3 98.0,27.5 97.8,28.0 96.1,28.2 96.0,28.5 96.2,28.8 96.0,29.1 95.4,28.7
    94.6,29.0 92.5,27.6 91.7,27.5 91.2,27.7 90.0,28.0 88.8,27.0 88.5,27.2 88.5,27.7 88.1,27.6 86.9,27.7 85.7,27.9
    84.9,28.4 84.1,28.6 83.7,29.1 83.2,29.2 82.2,29.8 81.6,30.1 81.0,29.9 78.5,31.3 78.2,32.6 78.4,32.9 78.9,32.8
    78.5,33.5 78.6,34.2 77.7,35.2 76.0,35.7 75.7,36.5 75.0,36.9 74.7,37.3 74.5,38.2 73.7,38.3 73.4,39.5 73.6,40.1
    74.6,40.6 75.4,40.9 76.4,40.8 76.8,41.3 78.0,41.5 78.4,41.9 79.9,42.4 79.9,43.1 80.4,43.3
    """,
    """
    121.0,21.8 120.8,21.7 120.5,21.8 119.9,22.7 119.8,23.6 120.5,24.7 121.5,25.6 122.2,25.2 122.2,24.9 121.0,21.8
    """,
)
_CHINA = None


def in_china(lon: float, lat: float) -> bool:
    global _CHINA
    if _CHINA is None:
        _CHINA = shapely.MultiPolygon([shapely.Polygon([tuple(map(float, p.split(","))) for p in o.split()])
                                       for o in _OUTLINES])
    return bool(_CHINA.contains(shapely.Point(lon, lat)))


def deliverable_crs(afters: Sequence, configured: str | None = None) -> CRS:
    """The CRS of a run's polygons and patches, from the later tiles (:class:`satcheck.tiles.TileInfo`)."""
    if configured:
        return CRS.from_user_input(configured)
    boxes = [transform_bounds(t.crs, "EPSG:4326", *t.bounds) for t in afters]
    lon = (min(b[0] for b in boxes) + max(b[2] for b in boxes)) / 2
    lat = (min(b[1] for b in boxes) + max(b[3] for b in boxes)) / 2
    if 73.5 <= lon < 136.5 and in_china(lon, lat):
        return gauss_kruger_3(lon)
    return afters[0].vector_crs
