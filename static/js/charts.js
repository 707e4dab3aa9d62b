/*
 * TargetGridCharts: thin helpers over Chart.js 4 (static/vendor/chart.umd.min.js) with the
 * house look. Colours come from CSS variables in app.css (--tg-chart-*), so light and dark
 * schemes both work, and charts re-colour when the scheme changes.
 *
 *   var chart = TargetGridCharts.line(canvas, {points: [{x: '2026-01-01T10:00:00Z', y: 10}, ...]});
 *   TargetGridCharts.pushPoint(chart, {x: msg.timestamp, y: msg.new_score});
 *   var hist = TargetGridCharts.bar(canvas, ['0-9', '10-19'], [12, 30]);
 *
 * Time axes use the date-fns adapter when it is loaded (it is, in base.html); without it the
 * line chart falls back to a linear axis over epoch milliseconds with ticks formatted in the
 * viewer's local time, so a page never breaks over a missing adapter.
 */
(function (window, document) {
  'use strict';

  var Chart = window.Chart;
  if (!Chart) {
    if (window.console) console.error('TargetGridCharts: Chart.js is not loaded');
    return;
  }

  var reduceMotion = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)');
  var darkScheme = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)');

  function prefersReducedMotion() {
    return !!(reduceMotion && reduceMotion.matches);
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function colors() {
    return {
      line: cssVar('--tg-chart-line', '#4f46e5'),
      fill: cssVar('--tg-chart-fill', 'rgba(79, 70, 229, 0.10)'),
      bar: cssVar('--tg-chart-bar', '#6366f1'),
      grid: cssVar('--tg-chart-grid', '#edf0f3'),
      text: cssVar('--tg-chart-text', '#5f6878'),
      surface: cssVar('--tg-surface', '#ffffff'),
      font: cssVar('--tg-font', 'system-ui, sans-serif')
    };
  }

  function applyDefaults() {
    var c = colors();
    Chart.defaults.font.family = c.font;
    Chart.defaults.font.size = 12;
    Chart.defaults.color = c.text;
    Chart.defaults.borderColor = c.grid;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.responsive = true;
    Chart.defaults.plugins.legend.display = false;
    var tooltip = Chart.defaults.plugins.tooltip;
    tooltip.backgroundColor = 'rgba(17, 24, 39, 0.94)';
    tooltip.titleColor = '#ffffff';
    tooltip.bodyColor = '#e5e7eb';
    tooltip.padding = 10;
    tooltip.cornerRadius = 8;
    tooltip.displayColors = false;
    tooltip.titleFont = { weight: '600' };
  }
  applyDefaults();

  function resolveCanvas(canvas) {
    var el = typeof canvas === 'string' ? document.querySelector(canvas) : canvas;
    if (!el) throw new Error('TargetGridCharts: canvas not found: ' + canvas);
    var existing = Chart.getChart(el);
    if (existing) existing.destroy();     // re-rendering a canvas (e.g. after an htmx swap)
    return el;
  }

  function label(el, text) {
    if (!el.hasAttribute('role')) el.setAttribute('role', 'img');
    if (!el.hasAttribute('aria-label') && text) el.setAttribute('aria-label', text);
  }

  function hasDateAdapter() {
    try {
      new Chart._adapters._date().formats();
      return true;
    } catch (err) {
      return false;
    }
  }

  function toMillis(x) {
    if (x instanceof Date) return x.getTime();
    if (typeof x === 'number') return x;
    return Date.parse(x);
  }

  function normalisePoint(p) {
    return { x: toMillis(p.x !== undefined ? p.x : p.t), y: Number(p.y) };
  }

  var tooltipTime = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: 'numeric', minute: '2-digit', second: '2-digit', timeZoneName: 'short'
  });
  var tickTime = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });

  // Tick labels in the viewer's locale (24-hour clock where that is the custom), chosen by the
  // unit the time scale picked; a midnight tick on an hourly axis shows the date instead.
  var tickFormats = {};
  function tickFormatter(key, options) {
    if (!tickFormats[key]) tickFormats[key] = new Intl.DateTimeFormat(undefined, options);
    return tickFormats[key];
  }
  function timeTickLabel(label, index, ticks) {
    var tick = ticks[index];
    if (!tick || typeof tick.value !== 'number') return label;
    var date = new Date(tick.value);
    var unit = this._unit;
    var midnight = date.getHours() === 0 && date.getMinutes() === 0 && date.getSeconds() === 0;
    if (unit === 'millisecond' || unit === 'second') {
      return tickFormatter('s', { hour: 'numeric', minute: '2-digit', second: '2-digit' }).format(date);
    }
    if (unit === 'minute' || unit === 'hour') {
      if (midnight) return tickFormatter('d', { month: 'short', day: 'numeric' }).format(date);
      return tickFormatter('m', { hour: 'numeric', minute: '2-digit' }).format(date);
    }
    if (unit === 'day' || unit === 'week') return tickFormatter('d', { month: 'short', day: 'numeric' }).format(date);
    if (unit === 'month' || unit === 'quarter') return tickFormatter('mo', { month: 'short', year: 'numeric' }).format(date);
    return tickFormatter('y', { year: 'numeric' }).format(date);
  }

  function applyLineColors(chart) {
    var c = colors();
    chart.data.datasets.forEach(function (ds) {
      ds.borderColor = c.line;
      ds.backgroundColor = c.fill;
      ds.pointBackgroundColor = c.surface;
      ds.pointBorderColor = c.line;
      ds.pointHoverBackgroundColor = c.line;
    });
  }

  function applyBarColors(chart) {
    var c = colors();
    chart.data.datasets.forEach(function (ds) {
      ds.backgroundColor = c.bar;
      ds.hoverBackgroundColor = c.line;
    });
  }

  function gridFor(axis) {
    return { color: colors().grid, drawTicks: false, display: axis !== 'x' };
  }

  /*
   * Score-over-time line chart.
   *   canvas: element or selector
   *   options.points: [{x: ISO string | epoch ms | Date, y: number}]
   *     (or options.labels + options.values, same meaning)
   *   options.label: dataset name for tooltip and aria-label (default "Score")
   *   options.stepped: true (default) draws a step line; a score holds until the next event
   *   options.maxPoints: pushPoint() drops the oldest points beyond this (default 500)
   *   options.yMin / options.yMax / options.unit ('minute'|'hour'|'day'…) / options.chart (merged into the config)
   */
  function line(canvas, options) {
    var opts = options || {};
    var el = resolveCanvas(canvas);
    var name = opts.label || 'Score';
    label(el, opts.ariaLabel || name + ' over time');

    var raw = opts.points || (opts.labels || []).map(function (x, i) { return { x: x, y: opts.values[i] }; });
    var points = raw.map(normalisePoint).filter(function (p) { return !isNaN(p.x); });
    points.sort(function (a, b) { return a.x - b.x; });

    var palette = colors();
    var useTime = hasDateAdapter();
    var xScale = useTime
      ? { type: 'time', time: opts.unit ? { unit: opts.unit } : {}, ticks: { callback: timeTickLabel } }
      : { type: 'linear', ticks: { callback: function (v) { return tickTime.format(new Date(v)); }, maxRotation: 0 } };
    xScale.grid = gridFor('x');
    xScale.border = { display: false };
    xScale.ticks = Object.assign({ maxRotation: 0, autoSkipPadding: 16, padding: 8 }, xScale.ticks);

    var config = {
      type: 'line',
      data: {
        datasets: [{
          label: name,
          data: points,
          stepped: opts.stepped === false ? false : 'before',
          borderColor: palette.line,
          backgroundColor: palette.fill,
          pointBackgroundColor: palette.surface,
          pointBorderColor: palette.line,
          pointHoverBackgroundColor: palette.line,
          fill: 'start',
          borderWidth: 2,
          tension: 0,
          pointRadius: points.length > 40 ? 0 : 3,
          pointHoverRadius: 5,
          pointBorderWidth: 2
        }]
      },
      options: {
        parsing: false,
        normalized: true,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        scales: {
          x: xScale,
          y: {
            min: opts.yMin,
            max: opts.yMax,
            grace: '8%',
            grid: gridFor('y'),
            border: { display: false },
            ticks: { padding: 8, precision: 0 }
          }
        },
        plugins: {
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? tooltipTime.format(new Date(items[0].parsed.x)) : ''; },
              label: function (item) { return name + ': ' + item.formattedValue; }
            }
          }
        }
      }
    };
    if (prefersReducedMotion()) config.options.animation = false;
    if (opts.chart) deepMerge(config, opts.chart);

    var chart = new Chart(el, config);
    chart.$tgKind = 'line';
    chart.$tgMaxPoints = opts.maxPoints || 500;
    return chart;
  }

  /*
   * Bar chart for distributions / histograms.
   *   bar(canvas, ['0–9', '10–19', …], [4, 12, …], {label: 'Leads', horizontal: false, chart: {...}})
   */
  function bar(canvas, labels, values, options) {
    var opts = options || {};
    var el = resolveCanvas(canvas);
    var name = opts.label || 'Count';
    label(el, opts.ariaLabel || name);
    var palette = colors();
    var horizontal = !!opts.horizontal;
    var valueAxis = horizontal ? 'x' : 'y';
    var categoryAxis = horizontal ? 'y' : 'x';

    var scales = {};
    scales[categoryAxis] = { grid: { display: false }, border: { display: false }, ticks: { padding: 6 } };
    scales[valueAxis] = {
      beginAtZero: true,
      grace: '5%',
      grid: { color: colors().grid, drawTicks: false },
      border: { display: false },
      ticks: { padding: 8, precision: 0 }
    };

    var config = {
      type: 'bar',
      data: {
        labels: labels.slice(),
        datasets: [{
          label: name,
          data: values.slice(),
          backgroundColor: palette.bar,
          hoverBackgroundColor: palette.line,
          borderRadius: 4,
          borderSkipped: 'start',
          maxBarThickness: 44,
          categoryPercentage: 0.8,
          barPercentage: 0.9
        }]
      },
      options: {
        indexAxis: categoryAxis,
        scales: scales,
        plugins: {
          tooltip: { callbacks: { label: function (item) { return name + ': ' + item.formattedValue; } } }
        }
      }
    };
    if (prefersReducedMotion()) config.options.animation = false;
    if (opts.chart) deepMerge(config, opts.chart);

    var chart = new Chart(el, config);
    chart.$tgKind = 'bar';
    return chart;
  }

  // Append {x, y} to a line chart (dataset 0) and redraw; keeps at most chart.$tgMaxPoints.
  function pushPoint(chart, point, datasetIndex) {
    var ds = chart.data.datasets[datasetIndex || 0];
    var p = normalisePoint(point);
    if (isNaN(p.x)) return;
    var data = ds.data;
    // Keep x sorted even when frames arrive out of order.
    var i = data.length;
    while (i > 0 && data[i - 1].x > p.x) i -= 1;
    data.splice(i, 0, p);
    var max = chart.$tgMaxPoints || 500;
    if (data.length > max) data.splice(0, data.length - max);
    if (data.length > 40) ds.pointRadius = 0;
    chart.update();
  }

  // Replace the points of a line chart (e.g. after TargetGridLive 'reconnected').
  function setPoints(chart, points, datasetIndex) {
    var ds = chart.data.datasets[datasetIndex || 0];
    ds.data = points.map(normalisePoint).filter(function (p) { return !isNaN(p.x); })
      .sort(function (a, b) { return a.x - b.x; });
    ds.pointRadius = ds.data.length > 40 ? 0 : 3;
    chart.update();
  }

  // Replace labels and values of a bar chart.
  function setBars(chart, labels, values) {
    chart.data.labels = labels.slice();
    chart.data.datasets[0].data = values.slice();
    chart.update();
  }

  function deepMerge(target, source) {
    Object.keys(source).forEach(function (key) {
      var value = source[key];
      if (value && typeof value === 'object' && !Array.isArray(value) &&
          target[key] && typeof target[key] === 'object' && !Array.isArray(target[key])) {
        deepMerge(target[key], value);
      } else {
        target[key] = value;
      }
    });
    return target;
  }

  function refreshTheme() {
    applyDefaults();
    Object.keys(Chart.instances).forEach(function (id) {
      var chart = Chart.instances[id];
      if (chart.$tgKind === 'line') applyLineColors(chart);
      else if (chart.$tgKind === 'bar') applyBarColors(chart);
      else return;
      var grid = colors().grid;
      Object.keys(chart.options.scales || {}).forEach(function (axis) {
        var scale = chart.options.scales[axis];
        if (scale.grid) scale.grid.color = grid;
        if (scale.ticks) scale.ticks.color = colors().text;
      });
      chart.update('none');
    });
  }

  function watch(query, fn) {
    if (!query) return;
    if (query.addEventListener) query.addEventListener('change', fn);
    else if (query.addListener) query.addListener(fn);
  }
  watch(darkScheme, refreshTheme);

  window.TargetGridCharts = {
    line: line,
    bar: bar,
    pushPoint: pushPoint,
    setPoints: setPoints,
    setBars: setBars,
    colors: colors,
    refreshTheme: refreshTheme
  };
})(window, document);
