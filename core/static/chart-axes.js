// Y axes a grower can read (loaded before dashboard.js, which uses yAxis and yScale).
//
// - At least a few ticks: a nearly flat series (pH 6.20 for an hour) is given a
//   span around its value instead of one collapsed to a single tick, and ticks
//   may be as close as Y_TICK_SPACE px on a 130 px chart.
// - The axis is as wide as its longest tick label, so a label such as "lux"
//   beside "12000" never overlaps the numbers.
"use strict";

const CHART_HEIGHT = 160; // px, x axis included: room for 3-5 y ticks
const Y_TICK_SPACE = 20; // px between y ticks at least
const Y_MIN_SPAN = 0.02; // of the value's size, the narrowest y range shown (but at least 0.1 unit)

function yScale() {
  return {
    range(u, min, max) {
      if (min == null || max == null) return [0, 1];
      const mid = (min + max) / 2;
      const span = Math.max(max - min, Math.abs(mid) * Y_MIN_SPAN, 0.1);
      const lo = Math.min(min, mid - span / 2);
      const hi = Math.max(max, mid + span / 2);
      const range = uPlot.rangeNum(lo, hi, 0.1, true);
      // Readings that never went below 0 (light at night, a dry level) get no negative
      // ticks: an axis from -0.05 lux shows a value no sensor can read.
      if (min >= 0 && range[0] < 0) return [0, Math.max(range[1], span)];
      return range;
    },
  };
}

function yAxis(label) {
  return {
    stroke: "#5f6f66",
    grid: { stroke: "#eef1ef" },
    space: Y_TICK_SPACE,
    label,
    labelSize: 16,
    gap: 4,
    size(u, values, axisIdx, cycleNum) {
      const axis = u.axes[axisIdx];
      if (cycleNum > 1) return axis._size; // uPlot converges in a few passes; keep the last
      let width = 0;
      if (values) {
        u.ctx.font = axis.font[0];
        for (const text of values) width = Math.max(width, u.ctx.measureText(text).width);
      }
      return Math.ceil(axis.ticks.size + axis.gap + width / devicePixelRatio + 4);
    },
  };
}
