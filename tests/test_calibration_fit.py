"""Every calibration and derived-reading formula against published worked examples.

Sources (docs/calibration.md, "Formulas and sources", lists them with links):
- pH: "How to calculate offset and slope" (meter maker's application note,
  studylib.net/doc/25392327): two electrodes in pH 7.01 and 4.01 buffers, and
  the Nernstian slope at 0, 25 and 50 C; Corning 440 pH meter manual 3.4.2 for
  the slope bands.
- EC: Yokogawa SC450G manual, appendix B: a solution read uncompensated at two
  temperatures gives its coefficient (1.298 %/C), and both readings then
  compensate to the same value at 25 C.
- TDS: Oakton/Eutech (Nova-Tech) conductivity-to-TDS table: 1500 uS/cm is
  1050 ppm on the 442 scale (factor 0.70), 8974 uS/cm is 4487 ppm NaCl (0.50).
- VPD: Ohio State University fact sheet AEX-804 (definition VPD = vpsat - vpair)
  and the worked leaf-VPD cases of kanuba.space's "VPD with leaf temperature"
  (Tetens' formula): 26 C / 60 % / leaf 24 C -> 0.967 kPa (air only 1.345),
  30 C / 50 % / leaf 28 C -> 1.658 kPa (air only 2.121).
- DLI: Apogee Instruments: 1 umol/m2/s for 24 h is 0.0864 mol/m2/d; Spectrum
  Technologies (after Faust): 38.1 umol/m2/s for 12 h is 1.6 mol/m2/d.
"""

import pytest

from smartanom.calibration import ec, fit
from smartanom.calibration.fit import CalibrationError, Point
from smartanom.derived import formulas


# -- pH --------------------------------------------------------------------

def test_nernst_slope_at_25_0_and_50_c():
    assert fit.nernst_slope_mv(25) == pytest.approx(59.16, abs=0.005)
    assert fit.nernst_slope_mv(0) == pytest.approx(54, abs=0.3)   # "at 0 C the response will be 54 mV/pH"
    assert fit.nernst_slope_mv(50) == pytest.approx(64, abs=0.2)  # "at 50 C ... 64 mV/pH"


def test_electrode_1_of_the_application_note_works_properly():
    # pH 7.01 = -15 mV, pH 4.01 = +160 mV: 175 mV over 3 pH, within 150 (85 %) to 186 mV (105 %).
    health = fit.ph_health([(-15.0, 7.01), (160.0, 4.01)])
    assert health.slopes[0] == pytest.approx(175 / 3 / 59.16 * 100, abs=0.05)  # 98.6 %
    assert health.slopes[0] == pytest.approx(98.6, abs=0.05)
    # At pH 7.00, 0.01 pH below the buffer, the potential is 0.58 mV higher.
    assert health.offset_mv == pytest.approx(-15.0 + 0.01 * 175 / 3, abs=0.01)
    assert health.verdict == "good" and health.accepted


def test_electrode_2_of_the_application_note_has_an_unacceptable_slope():
    # pH 7.01 = +15 mV, pH 4.01 = +160 mV: 145 mV, below the 150 mV (85 %) limit.
    health = fit.ph_health([(15.0, 7.01), (160.0, 4.01)])
    assert health.slopes[0] == pytest.approx(81.7, abs=0.05)
    assert health.verdict == "replace" and not health.accepted
    assert "clean or replace the probe" in health.message and "NOT applied" in health.message


def test_the_notes_band_ends_150_and_186_mv():
    assert fit.ph_health([(0.0, 7.0), (150.0, 4.0)]).slopes[0] == pytest.approx(84.5, abs=0.05)
    assert fit.ph_health([(0.0, 7.0), (186.0, 4.0)]).slopes[0] == pytest.approx(104.8, abs=0.05)


@pytest.mark.parametrize(
    "percent, verdict",
    [(100, "good"), (95.5, "good"), (92, "clean"), (87, "maintain"), (84, "replace"), (107, "replace")],
)
def test_slope_bands_of_the_corning_manual(percent, verdict):
    mv = 3 * 59.16 * percent / 100
    assert fit.ph_health([(0.0, 7.0), (mv, 4.0)]).verdict == verdict


def test_offset_bands():
    assert fit.ph_health([(25.0, 7.0), (25.0 + 177.5, 4.0)]).verdict == "good"
    assert fit.ph_health([(40.0, 7.0), (40.0 + 177.5, 4.0)]).verdict == "clean"   # beyond +/-30 mV: coating
    assert fit.ph_health([(-70.0, 7.0), (-70.0 + 177.5, 4.0)]).verdict == "replace"  # beyond +/-60 mV


def test_three_buffers_report_acid_and_base_slopes_worst_decides():
    s = 59.16
    health = fit.ph_health([(3 * s, 4.0), (0.0, 7.0), (-3 * s * 0.88, 10.0)])
    assert [round(x, 1) for x in health.slopes] == [100.0, 88.0]
    assert health.verdict == "maintain"


def test_temperature_changes_the_ideal_slope():
    # 3 pH units at 50 C give 3 x 64.1 mV: 100 % at 50 C, 108 % judged at 25 C.
    mv = 3 * fit.nernst_slope_mv(50)
    assert fit.ph_health([(0.0, 7.0), (mv, 4.0)], temperature_c=50).slopes[0] == pytest.approx(100.0)
    assert fit.ph_health([(0.0, 7.0), (mv, 4.0)]).slopes[0] == pytest.approx(108.4, abs=0.05)


def test_raw_ph_is_read_back_as_the_boards_millivolts():
    assert fit.ph_to_mv(7.0) == 0.0
    assert fit.ph_to_mv(4.0) == pytest.approx(3 * 59.16, abs=0.02)


# -- curves ------------------------------------------------------------------

def test_one_point_shifts_ph_and_scales_ec():
    assert fit.fit([Point(6.9, 7.0)]).apply(4.1) == pytest.approx(4.2)
    ec_curve = fit.fit([Point(1.5, 1.413)], one_point="gain")
    assert ec_curve.apply(3.0) == pytest.approx(2.826)
    assert ec_curve.apply(0.0) == 0.0


def test_two_points_give_the_line_through_them():
    curve = fit.fit([Point(8.3, 7.0), Point(5.6, 4.0)])
    assert curve.slope == pytest.approx(1 / 0.9)
    assert curve.apply(8.3) == pytest.approx(7.0) and curve.apply(5.6) == pytest.approx(4.0)
    assert curve.apply(11.0) == pytest.approx(10.0)


def test_three_points_are_piecewise_linear_with_end_segments_extended():
    curve = fit.fit([Point(7.0, 7.0), Point(4.2, 4.0), Point(9.5, 10.0)])
    for p in curve.points:
        assert curve.apply(p.raw) == pytest.approx(p.reference)
    assert curve.apply(5.6) == pytest.approx(4.0 + 1.4 * 3 / 2.8)       # acid segment
    assert curve.apply(8.25) == pytest.approx(7.0 + 1.25 * 3 / 2.5)     # base segment
    assert curve.apply(2.8) == pytest.approx(4.0 - 1.4 * 3 / 2.8)       # below the ends: acid segment extended
    assert curve.apply(10.75) == pytest.approx(10.0 + 1.25 * 3 / 2.5)


def test_bad_points_are_refused_with_a_reason():
    with pytest.raises(CalibrationError, match="same value"):
        fit.fit([Point(7.0, 7.0), Point(7.0, 4.0)])
    with pytest.raises(CalibrationError, match="same standard"):
        fit.fit([Point(7.0, 7.0), Point(4.0, 7.0)])
    with pytest.raises(CalibrationError, match="read 0"):
        fit.fit([Point(0.0, 1.413)], one_point="gain")
    with pytest.raises(CalibrationError):
        fit.fit([])


# -- EC ----------------------------------------------------------------------

def test_yokogawa_example_coefficient_and_compensation():
    alpha = ec.coefficient_from(124.5, 18.0, 147.6, 31.0)
    assert alpha * 100 == pytest.approx(1.298, abs=0.0005)
    at_18 = ec.compensate(124.5, 18.0, alpha)
    at_31 = ec.compensate(147.6, 31.0, alpha)
    assert at_18 == pytest.approx(at_31) == pytest.approx(136.9, abs=0.05)


def test_two_percent_per_degree_to_25_c_by_default():
    assert ec.compensate(1.413, 25.0) == 1.413
    assert ec.compensate(1.2, 20.0) == pytest.approx(1.2 / 0.9)     # 5 C cold reads 10 % low
    assert ec.compensate(1.65, 30.0) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        ec.compensate(1.0, -30.0)  # 1 + 0.02 * -55 < 0: no sensible answer


# -- derived ---------------------------------------------------------------

def test_tds_from_the_conversion_table():
    assert formulas.tds_ppm(1500, 0.7, "uS/cm") == pytest.approx(1050)   # 442 scale
    assert formulas.tds_ppm(8.974, 0.5, "mS/cm") == pytest.approx(4487)  # NaCl scale, in mS/cm
    assert formulas.tds_ppm(1413, 0.5, "µS/cm") == pytest.approx(706.5)


def test_vpd_worked_examples():
    assert formulas.vpd_kpa(26, 60) == pytest.approx(1.345, abs=0.0015)
    assert formulas.vpd_kpa(26, 60, leaf_offset_c=-2) == pytest.approx(0.967, abs=0.0015)
    assert formulas.vpd_kpa(30, 50) == pytest.approx(2.121, abs=0.0015)
    assert formulas.vpd_kpa(30, 50, leaf_offset_c=-2) == pytest.approx(1.658, abs=0.0015)
    assert formulas.saturation_vapour_pressure_kpa(0) == pytest.approx(0.61078)


def test_dli_from_ppfd():
    day = sum(formulas.dli_increment(1.0, 1.0, 60) for _ in range(24 * 60))
    assert day == pytest.approx(0.0864)
    twelve_hours = sum(formulas.dli_increment(38.1, 38.1, 3600) for _ in range(12))
    assert twelve_hours == pytest.approx(1.646, abs=0.0005)  # "1.6 mol/m2/d"
    assert formulas.dli_increment(0, 500, 10) == pytest.approx(250 * 10 / 1e6)  # trapezoid
