"""The run configuration: a typed object loaded from YAML.

Every model forbids unknown keys, so a typo in a config file is an error
rather than a silently ignored setting.  The resolved configuration is
written next to every output (``config.yaml``) so each result can be
reproduced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from satcheck.errors import ConfigError

M2_PER_MU = 10000.0 / 15.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowConfig(_Strict):
    size: int = Field(1024, ge=64, le=8192, description="Side of a processing window in pixels.")
    halo: int = Field(32, ge=0, le=512, description="Extra pixels read around each window.")
    readers: int | None = Field(
        None, ge=1, le=16,
        description="Threads reading windows ahead of scoring; null = half of detect.model.threads or the cores, max 4.")


class BandsConfig(_Strict):
    before: list[int] | None = Field(
        None, min_length=3, description="Band numbers of red, green, blue (and NIR) in the earlier tiles; "
        "null = from the files (colour interpretation or band names), else their own order.")
    after: list[int] | None = Field(None, min_length=3, description="The same for the later tiles.")


class AlignConfig(_Strict):
    resampling: Literal["nearest", "bilinear", "cubic"] = "bilinear"
    coregister_max_px: float = Field(
        8.0, ge=0, le=64, description="Largest shift between the dates measured and corrected, in pixels; 0 = off.")
    coregister_windows: bool = Field(
        True, description="Where an earlier tile's chips disagree on one shift (relief, a mosaic of several scenes), "
                          "measure and correct each window on its own.")


class MaskConfig(_Strict):
    cloud: bool = Field(True, description="Find cloud in the images (tiles with a provider mask use that instead).")
    cloud_brightness: float = Field(0.75, gt=0, le=1, description="Min brightness (0..1) of cloud.")
    cloud_max_saturation: float = Field(0.18, ge=0, le=1)
    cloud_contrast: float = Field(
        0.2, ge=0, le=1, description="Cloud is brighter than the same place on the other date by at least this.")
    cloud_max_texture: float = Field(
        0.06, gt=0, description="Max local variation of brightness (std over 3x3 px / mean) inside a cloud.")
    cloud_edge_px: float = Field(
        4.0, ge=0, description="Min width of a cloud's edge in pixels of the decimated read (roofs read about 2); "
                               "from 3/4 of it, cloud where its shadow lies at the scene's offset.")
    cloud_mask: str | None = Field(
        None, description="Provider cloud mask per tile: a file name pattern in the tile's folder, {stem} = the "
                          "tile's name without suffix, * allowed; raster (nonzero = cloud) or .gpkg/.shp/.geojson.")
    shadow: bool = True
    shadow_brightness: float = Field(
        0.5, gt=0, lt=1, description="Shadow: darker than this share of the same place on the other date.")
    dilate_m: float = Field(30.0, ge=0, le=500, description="Margin added around cloud and shadow (soft edges).")
    min_cloud_m2: float = Field(5000.0, ge=0, description="Smaller bright blobs are roofs, not cloud.")
    warn_share: float = Field(0.2, ge=0, le=1, description="Warn when more of a pair than this is cloud or shadow.")


class NormaliseConfig(_Strict):
    # meanstd: a gain and an offset per band. Full histogram matching also maps real change away where much of
    # a pair changed (farmland become town); see models/MODEL_CARD.md for what that cost on real pairs.
    method: Literal["histogram", "meanstd", "none"] = "meanstd"
    sample_px: int = Field(1024, ge=64, le=8192, description="Side of the decimated read used for statistics.")


class CvaConfig(_Strict):
    max_shift_px: int = Field(2, ge=0, le=4, description="Misregistration tolerated by the difference.")
    threshold: float | None = Field(None, gt=0, description="Fixed change-magnitude threshold; null = automatic.")
    min_threshold: float = Field(0.12, gt=0, description="Floor of the automatic threshold (magnitude 0..1).")
    edge_threshold: float = Field(0.2, gt=0, description="Gradient of normalised brightness that counts as an old edge.")
    parcel_rule: float = Field(0.65, gt=0, le=1,
                               description="Damp regions whose outline lies on old edges for more than this share; 1 = off.")


class ModelConfig(_Strict):
    weights: str | None = Field(None, description="Weights file; null = the shipped weights for the band count.")
    threshold: float = Field(0.5, gt=0, lt=1)
    batch_size: int = Field(1, ge=1, le=256)
    tile_px: int = Field(1152, ge=64, le=4096, description="Inference window side (a run's window plus halo fits one).")
    overlap_px: int = Field(64, ge=0, le=1024)
    engine: Literal["auto", "torch", "onnx"] = "auto"
    threads: int | None = Field(None, ge=1, description="CPU threads; null = all cores.")
    gpu_precision: Literal["float32", "bfloat16", "float16"] = Field(
        "bfloat16", description="Arithmetic on a GPU (bfloat16/float16: autocast); the CPU always runs float32.")
    # 10 m training pairs (OSCD) were only ever seen enlarged 1-2x, never at their own pixel size; a run on
    # such imagery enlarges it by the middle of that range (models/MODEL_CARD.md, "Coarse imagery").
    enlarge_above_m: float = Field(5.0, gt=0, description="Pixels coarser than this (metres) are enlarged for the model.")
    enlarge_by: float = Field(1.5, ge=1, le=4, description="How much such tiles are enlarged; 1 = never.")


class DetectConfig(_Strict):
    detector: Literal["auto", "model", "cva"] = Field("auto", description="auto | model | cva")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cva: CvaConfig = CvaConfig()
    model: ModelConfig = ModelConfig()


class CleanupConfig(_Strict):
    open_px: int = Field(1, ge=0, le=10, description="Opening radius: removes specks and misregistration slivers.")
    close_px: int = Field(2, ge=0, le=10)
    fill_holes_m2: float = Field(100.0, ge=0)
    min_area_m2: float = Field(50.0, ge=0, description="Change polygons smaller than this are dropped.")
    min_mean_score: float = Field(0.7, ge=0, le=1,
                                  description="Change polygons whose mean probability is lower are dropped.")
    # Harvested, ploughed and fallow fields and drained ponds are the change the network most often takes for
    # digging (satcheck/detect/excavation.py says how they are told apart; models/MODEL_CARD.md, "No mining from
    # agriculture", what it was measured on). 0 and 1 turn the checks off.
    excavation_min_contrast: float = Field(
        1.5, ge=0, description="Changes typed excavation are dropped unless the later date is this many times "
        "brighter inside them than on the ground within 20 m around them.")
    excavation_max_old_outline: float = Field(
        0.6, ge=0, le=1, description="Changes typed excavation are dropped when more than this share of their "
        "outline lies on edges the earlier date already had (a field or pond changing as a whole).")
    building_max_old_outline: float = Field(
        1.0, ge=0, le=1, description="Changes typed building are dropped when more than this share of their outline "
        "lies on edges the earlier date already had (a ploughed or harvested field taken for a roof); 1 turns it off.")


class OutputConfig(_Strict):
    probability_cog: bool = True
    crs: str | None = Field(
        None, description="CRS of change polygons and patches (projected, metres), e.g. EPSG:4547; null = the "
        "CGCS2000 3-degree Gauss-Krüger zone of the imagery's centre in China, else the later tile's projected CRS.")

    @field_validator("crs")
    @classmethod
    def _metres(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            crs = CRS.from_user_input(v)
        except CRSError:
            raise ValueError(f"'{v}' is not a CRS; write it as EPSG:NNNN, e.g. EPSG:4547") from None
        units = {a.unit_name for a in crs.axis_info}
        if not crs.is_projected or not units <= {"metre", "meter"}:
            raise ValueError(f"'{v}' is not projected in metres (areas are in m²); choose a projected CRS such as "
                             "a CGCS2000 Gauss-Krüger zone, EPSG:4534-4554")
        return v


class FarmlandFields(_Strict):
    class_code: str = "DLBM"
    class_name: str = "DLMC"


class AdminFields(_Strict):
    code: str = "XZQDM"
    name: str = "XZQMC"


class PermitFields(_Strict):
    permit_no: str = "permit_no"
    holder: str = "holder"
    valid_from: str = "valid_from"
    valid_to: str = "valid_to"


class ApprovalFields(_Strict):
    approval_no: str = "approval_no"
    approved_on: str = "approved_on"


class RulesConfig(_Strict):
    farmland: FarmlandFields = FarmlandFields()
    admin: AdminFields = AdminFields()
    mining_permits: PermitFields = PermitFields()
    approved_land: ApprovalFields = ApprovalFields()
    farmland_codes: list[str] = Field(["0101", "0102", "0103"], description="DLBM codes that count as farmland (耕地).")
    approved_share: float = Field(0.5, gt=0, le=1,
                                  description="Share of a change inside approved land that makes it approved.")
    min_overlap_m2: float = Field(
        1.0, ge=0, description="An overlap with a rule layer counts (on_basic_farmland, on farmland, inside or "
        "outside a permit) from this many m² ...")
    min_overlap_share: float = Field(0.01, ge=0, le=1, description="... and this share of the patch (both).")
    allow_partial: bool = Field(
        False, description="Accept rule layers that miss the imagery (they cover another part of the jurisdiction) "
        "with a warning; otherwise such a layer is an error (--allow-partial-rules).")


class MmuConfig(_Strict):
    farmland_construction: float = Field(200.0, ge=0)
    illegal_mining: float = Field(400.0, ge=0)
    expired_permit_mining: float = Field(400.0, ge=0)
    out_of_bounds_mining: float = Field(400.0, ge=0)
    approved: float = Field(200.0, ge=0)
    other_change: float = Field(400.0, ge=0)


class PatchConfig(_Strict):
    mmu_m2: MmuConfig = MmuConfig()
    merge_gap_m: float = Field(5.0, ge=0, description="Fragments of one change type closer than this become one patch.")
    simplify_px: float = Field(1.0, ge=0, le=1, description="Boundary simplification tolerance in pixels (at most 1).")
    export_other: bool = Field(False, description="Export other_change patches too.")
    export_approved: bool = Field(False, description="Export changes on approved land too.")
    lang: Literal["en", "zh"] = "en"


class ReportConfig(_Strict):
    chips: bool = True
    chip_min_m: float = Field(80.0, gt=0, description="Smallest side of a chip in metres.")
    chip_px: int = Field(256, ge=64, le=1024)
    html: bool = True
    pdf: bool = True
    cjk_font: str | None = Field(None, description="TTF/TTC font with Chinese glyphs for the PDF; null = search the system.")


class RejectReason(_Strict):
    key: str = Field(..., min_length=1)
    label: str
    label_zh: str = ""


class ReviewConfig(_Strict):
    reasons: list[RejectReason] = [
        RejectReason(key="seasonal", label="seasonal or crop change", label_zh="季节性/作物变化"),
        RejectReason(key="cloud_shadow", label="cloud or shadow", label_zh="云或阴影"),
        RejectReason(key="misregistration", label="misregistration", label_zh="配准误差"),
        RejectReason(key="approved_legal", label="approved or legal", label_zh="已批准或合法"),
        RejectReason(key="existed_before", label="existed before", label_zh="原已存在"),
        RejectReason(key="other", label="other", label_zh="其他"),
    ]
    match_iou: float = Field(0.3, gt=0, le=1, description="IoU at which a new patch is the same case as a known one.")
    match_share: float = Field(0.5, gt=0, le=1, description="Or: share of either patch covered by the other.")
    regrow_share: float = Field(0.2, ge=0, description="A known case comes back to review when it grew by more than this.")
    classes: list[str] = Field(
        ["farmland_construction", "illegal_mining", "expired_permit_mining", "out_of_bounds_mining"],
        description="Patch classes imported for review; approved and other_change stay out by default.")

    @field_validator("reasons")
    @classmethod
    def _some_reasons(cls, v: list[RejectReason]) -> list[RejectReason]:
        # A rejection must give one of these reasons: with none, no patch could ever be rejected.
        if not v:
            raise ValueError("lists no rejection reason, so no patch could be rejected; list at least one "
                             "(key, label), or leave review.reasons out for the defaults")
        keys = [r.key for r in v]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"reason key '{twice[0]}' is listed twice; give each reason its own key")
        return v


class RunConfig(_Strict):
    bands: BandsConfig = BandsConfig()
    window: WindowConfig = WindowConfig()
    align: AlignConfig = AlignConfig()
    masks: MaskConfig = MaskConfig()
    normalise: NormaliseConfig = NormaliseConfig()
    detect: DetectConfig = DetectConfig()
    cleanup: CleanupConfig = CleanupConfig()
    output: OutputConfig = OutputConfig()
    rules: RulesConfig = RulesConfig()
    patches: PatchConfig = PatchConfig()
    report: ReportConfig = ReportConfig()
    review: ReviewConfig = ReviewConfig()

    def with_overrides(self, **dotted: object) -> "RunConfig":
        """Return a copy with ``section.key`` values replaced (None values skipped)."""
        data = self.model_dump()
        for key, value in dotted.items():
            if value is None:
                continue
            node = data
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
                if node is None:
                    raise ConfigError(f"command-line options: unknown key '{key}'; "
                                      "see configs/default.yaml for the valid keys")
            node[parts[-1]] = value
        return _validate(RunConfig, data, "command-line options")


def parse_settings(items: list[str]) -> dict[str, object]:
    """``["cleanup.building_max_old_outline=0.6", ...]`` as dotted keys for :meth:`RunConfig.with_overrides`.

    Each value is read as YAML, so numbers, booleans and lists come out typed.
    """
    settings: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"setting '{item}': write it as KEY=VALUE, e.g. cleanup.building_max_old_outline=0.6")
        try:
            settings[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"setting '{item}': the value is not valid YAML") from None
    return settings


def _validate(model: type[BaseModel], data: object, source: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        if first["type"] == "extra_forbidden":
            msg = f"unknown key '{where}'"
        else:
            msg = f"'{where}': {first['msg'].removeprefix('Value error, ')}"
        raise ConfigError(f"{source}: {msg}; see configs/default.yaml for the valid keys") from None


def load_yaml(path: str | os.PathLike) -> object:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a YAML file; pass the file itself")
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found; pass an existing YAML file")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}; saved as "
                          "GBK?); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror or exc}); check the file and its permissions") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"{p}: not valid YAML{at}; fix the syntax") from None


def load_config(path: str | os.PathLike | None) -> RunConfig:
    """Load a :class:`RunConfig` from YAML; ``None`` gives the defaults."""
    if path is None:
        return RunConfig()
    return _validate(RunConfig, load_yaml(path), str(path))


def dump_config(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
