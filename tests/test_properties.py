"""Property-based hostile input (hardening issue): whatever a user feeds the readers, the answer is a result or a
FoleyError with a message — never another exception (which the CLI would show as a traceback)."""
import json
import math

from hypothesis import HealthCheck, given, settings, strategies as st

from foley.errors import FoleyError
from foley.tracks import load_tracks
from foley.world.scene import WorldConfig

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

cell = st.one_of(st.integers(-10 ** 12, 10 ** 12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.sampled_from(["", "nan", "inf", "-1", "1e308", "true", "x", "0", "1", "-0.5"]),
                 st.text(max_size=6))
row = st.lists(cell, min_size=0, max_size=8).map(",".join)
header = st.sampled_from(["# fps=25", "# fps=0", "# fps=nan", "# fps=x", "#fps=30", "", "# fps=-5", "# fps=1e9"])
columns = st.sampled_from(["object,frame,x,y,mass,reliable", "object,frame,x,y,mass", "frame,x", "frame,x,y",
                           "x,y", "", "frame,frame,x", "object,frame,x,y,mass,reliable,extra"])


@SETTINGS
@given(header, columns, st.lists(row, max_size=12))
def test_any_track_csv_loads_or_is_refused_in_one_message(tmp_path_factory, head, cols, rows):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_text("\n".join([head, cols] + rows) + "\n")
    try:
        tracks = load_tracks(path)
    except FoleyError as e:
        assert str(e) and "\n" not in str(e).strip()
        return
    for t in tracks:  # what loads is usable: one length, finite positions wherever a frame is reliable (gaps are NaN)
        assert len(t.x) == len(t.y) == len(t.mass) == len(t.reliable)
        assert all(math.isfinite(x) for x, ok in zip(t.x, t.reliable) if ok)


json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6),
                                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)),
                          lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                          max_leaves=12)
track_like = st.fixed_dictionaries({"x": json_value, "y": json_value, "mass": json_value},
                                   optional={"reliable": json_value, "label": json_value, "score": json_value})


@SETTINGS
@given(st.one_of(json_value, st.fixed_dictionaries({"fps": json_value, "tracks": json_value},
                                                  optional={"frame_size": json_value, "schema": json_value}),
                 st.fixed_dictionaries({"fps": st.sampled_from([25, 0, -1, 30.5, "25"]),
                                        "tracks": st.lists(track_like, max_size=3)})))
def test_any_track_json_loads_or_is_refused_in_one_message(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("json") / "t.json"
    path.write_text(json.dumps(doc))
    try:
        tracks = load_tracks(path)
    except FoleyError as e:
        assert str(e)
        return
    assert tracks and all(len(t.x) == len(t.mass) for t in tracks)


number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 6, 10 ** 6))


@SETTINGS
@given(number, number, number, number, number, number)
def test_any_world_config_is_valid_or_refused(seconds, fps, width, sr, share, per_shard):
    try:
        cfg = WorldConfig(seconds=seconds, fps=fps, width=width, height=width, sr=sr, dual_mono_share=share,
                          clips_per_shard=per_shard)
    except FoleyError as e:
        assert str(e)
        return
    assert cfg.seconds > 0 and math.isfinite(cfg.seconds) and cfg.clips_per_shard >= 1 and 0 <= cfg.dual_mono_share <= 1
