"""ENTSO-E: intensity from the fuel mix matches the published series; CSV repairs; A75 XML; the CLI."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.entsoe import (
    EntsoeError,
    intensities,
    parse_a75,
    read_intensity_csv,
    read_production_csv,
)
from toogreen.app.cli import app
from toogreen.domain.intensity import UnknownFuelError, mix_intensity
from toogreen.settings import GridSourceSettings

GRID = GridSourceSettings()
FACTORS = (GRID.lifecycle_factors_gco2_per_kwh, GRID.import_factors_gco2_per_kwh, frozenset(GRID.renewable_fuels))


@pytest.mark.parametrize("zone", ["fr", "gb"])
def test_intensity_matches_the_published_series_within_1_percent(data_dir, zone):
    folder = data_dir / "grid" / "entsoe-2020"
    published = {p.ts_ms: p.carbon_gco2_per_kwh for p in read_intensity_csv(folder / f"{zone}_ci.csv")}
    ours = dict(
        (ts, r.carbon_gco2_per_kwh)
        for ts, r in intensities(read_production_csv(folder / f"{zone}_production.csv").mixes, GRID)
    )
    common = sorted(set(published) & set(ours))
    assert len(common) > 9000
    mape = sum(abs(ours[t] - published[t]) / published[t] for t in common) / len(common)
    mae_rel = sum(abs(ours[t] - published[t]) for t in common) / sum(published[t] for t in common)
    assert mape < 0.01 and mae_rel < 0.01
    # without imports the intensity differs by a few per cent, as the data's README says
    production_based = dict(
        (ts, r.carbon_gco2_per_kwh)
        for ts, r in intensities(
            read_production_csv(folder / f"{zone}_production.csv").mixes, GRID, include_imports=False
        )
    )
    drift = sum(abs(production_based[t] - published[t]) for t in common) / sum(published[t] for t in common)
    assert 0.01 < drift < 0.15


def test_pumped_storage_is_left_out_and_exports_not_counted():
    mix = {"Nuclear": 100.0, "Fossil Gas": 100.0, "Hydro Pumped Storage": -500.0, "DE": -50.0, "ES": 100.0}
    result = mix_intensity(mix, *FACTORS)
    assert result.carbon_gco2_per_kwh == pytest.approx((100 * 16 + 100 * 469 + 100 * 220) / 300)
    assert result.ignored == {"Hydro Pumped Storage": -500.0, "DE": -50.0}
    assert result.renewable_pct == 0.0


def test_renewable_share_of_generation():
    result = mix_intensity({"Wind Onshore": 30.0, "Solar": 10.0, "Nuclear": 60.0, "Waste": 0.0}, *FACTORS)
    assert result.renewable_pct == pytest.approx(40.0)


def test_unknown_column_is_an_error_and_an_empty_mix_a_gap():
    with pytest.raises(UnknownFuelError, match="known are"):
        mix_intensity({"Unobtainium": 5.0}, *FACTORS)
    assert mix_intensity({"Hydro Pumped Storage": -3.0}, *FACTORS) is None


def test_csv_gaps_duplicates_and_offsets(tmp_path: Path):
    csv = tmp_path / "p.csv"
    csv.write_text(
        ",Nuclear,Fossil Gas,Hydro Pumped Storage\n"
        "2020-03-29 00:00:00,100,10,-5\n"
        "2020-03-29 01:00:00,,,\n"  # a gap
        "2020-03-29 02:00:00,100,,1\n"  # an empty cell
        "2020-03-29 02:00:00,999,999,0\n"  # a duplicate: the first value wins
        "2020-03-29T04:00:00+01:00,50,50,0\n"  # an explicit offset: 03:00 UTC
    )
    series = read_production_csv(csv)
    assert [ts for ts, _ in series.mixes] == [1585440000000, 1585447200000, 1585450800000]
    assert series.duplicates == 1 and series.rows_without_data == 1 and series.empty_cells == 4
    assert series.mixes[1][1] == {"Nuclear": 100.0, "Hydro Pumped Storage": 1.0}


A75 = """<?xml version="1.0" encoding="UTF-8"?>
<GL_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0">
  <mRID>abc</mRID><type>A75</type><process.processType>A16</process.processType>
  <TimeSeries>
    <mRID>1</mRID><businessType>A01</businessType><objectAggregation>A08</objectAggregation>
    <inBiddingZone_Domain.mRID codingScheme="A01">10YFR-RTE------C</inBiddingZone_Domain.mRID>
    <quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name><curveType>A01</curveType>
    <MktPSRType><psrType>B14</psrType></MktPSRType>
    <Period>
      <timeInterval><start>2020-01-01T00:00Z</start><end>2020-01-01T01:00Z</end></timeInterval>
      <resolution>PT30M</resolution>
      <Point><position>1</position><quantity>40000</quantity></Point>
      <Point><position>2</position><quantity>41000</quantity></Point>
    </Period>
  </TimeSeries>
  <TimeSeries>
    <mRID>2</mRID><businessType>A01</businessType>
    <inBiddingZone_Domain.mRID codingScheme="A01">10YFR-RTE------C</inBiddingZone_Domain.mRID>
    <curveType>A03</curveType>
    <MktPSRType><psrType>B04</psrType></MktPSRType>
    <Period>
      <timeInterval><start>2020-01-01T00:00Z</start><end>2020-01-01T01:00Z</end></timeInterval>
      <resolution>PT30M</resolution>
      <Point><position>1</position><quantity>3000</quantity></Point>
    </Period>
  </TimeSeries>
  <TimeSeries>
    <mRID>3</mRID><businessType>A01</businessType>
    <outBiddingZone_Domain.mRID codingScheme="A01">10YFR-RTE------C</outBiddingZone_Domain.mRID>
    <curveType>A01</curveType>
    <MktPSRType><psrType>B10</psrType></MktPSRType>
    <Period>
      <timeInterval><start>2020-01-01T00:00Z</start><end>2020-01-01T00:30Z</end></timeInterval>
      <resolution>PT30M</resolution>
      <Point><position>1</position><quantity>1200</quantity></Point>
    </Period>
  </TimeSeries>
</GL_MarketDocument>"""


def test_a75_xml_to_mixes():
    mixes = parse_a75(A75)
    assert [ts for ts, _ in mixes] == [1577836800000, 1577838600000]
    assert mixes[0][1] == {"Nuclear": 40000.0, "Fossil Gas": 3000.0, "Hydro Pumped Storage": -1200.0}
    assert mixes[1][1] == {"Nuclear": 41000.0, "Fossil Gas": 3000.0}  # A03 repeats the last value
    result = mix_intensity(mixes[0][1], *FACTORS)
    assert result.carbon_gco2_per_kwh == pytest.approx((40000 * 16 + 3000 * 469) / 43000)


def test_a75_acknowledgement_is_a_clear_error():
    ack = """<Acknowledgement_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0">
      <Reason><code>999</code><text>No matching data found for Data item ACTUAL_GENERATION</text></Reason>
    </Acknowledgement_MarketDocument>"""
    with pytest.raises(EntsoeError, match="No matching data found"):
        parse_a75(ack)


def test_cli_writes_time_intensity_renewables(data_dir, tmp_path):
    out = tmp_path / "fr.csv"
    src = data_dir / "grid" / "entsoe-2020" / "fr_production.csv"
    result = CliRunner().invoke(app, ["grid", "intensity", "--entsoe-csv", str(src), "--zone", "FR", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "Time,Carbon Intensity,Renewable Percentage" and len(lines) > 9000
    assert lines[1].startswith("2019-12-20 00:00:00,42.341")
    bad = CliRunner().invoke(app, ["grid", "intensity", "--entsoe-csv", str(src), "--zone", "XX", "--out", str(out)])
    assert bad.exit_code != 0 and "known zones are" in bad.output
