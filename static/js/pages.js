/*
 * TargetGridPages: the live behaviour of the operator pages (no build step, no dependencies
 * beyond live.js and charts.js, which base.html loads first).
 *
 * Each page is picked by its <body> class (page-dashboard, page-leads, page-lead,
 * page-leaderboard, page-events, page-alerts). Live frames come through TargetGridLive.on(...); when a frame
 * does not carry everything a region shows, the region is re-fetched: the page's own URL is
 * fetched again and the elements marked data-region="name" are swapped in. After a reconnect
 * every live region is re-fetched, so nothing missed while offline stays missing.
 *
 * DOM built from frames uses textContent only (frame values are never parsed as HTML).
 */
(function (window, document) {
  'use strict';

  var Live = window.TargetGridLive;
  var Charts = window.TargetGridCharts;
  if (!Live) return;

  // ---- helpers ---------------------------------------------------------------

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  // Run fn at most once per `wait` ms, after the calls stop (trailing), but never later than
  // `maxWait` ms after the first call of a burst.
  function debounce(fn, wait, maxWait) {
    var timer = null;
    var first = 0;
    return function () {
      var now = Date.now();
      if (!timer) first = now;
      clearTimeout(timer);
      var delay = maxWait ? Math.min(wait, Math.max(0, first + maxWait - now)) : wait;
      timer = setTimeout(function () { timer = null; fn(); }, delay);
    };
  }

  function readJson(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (err) { return null; }
  }

  // Re-fetch this page and swap in the named regions; resolves with the fetched document.
  var inFlight = null;
  function refreshRegions(names) {
    if (inFlight) return inFlight.then(function () { return refreshRegions(names); });
    inFlight = fetch(window.location.href, {
      credentials: 'same-origin',
      headers: { 'X-Requested-With': 'fetch', Accept: 'text/html' }
    }).then(function (response) {
      if (response.redirected && /\/accounts\/login\//.test(response.url)) {
        Live.toast('Your session has ended. Sign in again to keep the page live.', { level: 'warning' });
        throw new Error('signed out');
      }
      if (!response.ok) throw new Error('HTTP ' + response.status);
      return response.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, 'text/html');
      names.forEach(function (name) {
        var fresh = doc.querySelector('[data-region="' + name + '"]');
        var current = document.querySelector('[data-region="' + name + '"]');
        if (!fresh || !current) return;
        var node = document.importNode(fresh, true);
        current.replaceWith(node);
        Live.localizeTimes(node);
        if (window.htmx) window.htmx.process(node);
      });
      return doc;
    }).catch(function (err) {
      if (err && err.message !== 'signed out') {
        Live.toast('Could not refresh the page data (' + err.message + '). It will retry on the next update.', { level: 'warning' });
      }
      return null;
    }).then(function (doc) {
      inFlight = null;
      return doc;
    });
    return inFlight;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // data-stages: [[name, colour], ...] (the operators' stages); the frames carry the lead's stage.
  function stageColor(name, stages) {
    var color = 'grey';
    (stages || []).forEach(function (stage) { if (stage[0] === name) color = stage[1]; });
    return color;
  }

  function stageBadge(name, stages) {
    if (!name) return el('span', 'muted', '—');
    var badge = el('span', 'badge badge--stage badge--stage-' + stageColor(name, stages), name);
    badge.setAttribute('data-stage', name);
    return badge;
  }

  function parseStages(node) {
    try { return JSON.parse(node.getAttribute('data-stages') || '[]'); } catch (err) { return []; }
  }

  function signed(n) { return (n > 0 ? '+' : '') + n; }

  function leadUrl(id) { return '/leads/' + encodeURIComponent(id) + '/'; }

  function timeNode(iso, style) {
    var node = el('time');
    node.setAttribute('datetime', iso);
    node.setAttribute('data-local', style || 'datetime');
    node.textContent = Live.formatTime(iso, style || 'datetime') || iso;
    return node;
  }

  function scoreNode(score, max) {
    var wrap = el('span', 'score');
    wrap.setAttribute('data-score', '');
    var value = el('span', 'score__value', score);
    value.setAttribute('data-score-value', '');
    var bar = el('progress', 'progress', score + ' of ' + max);
    bar.max = max;
    bar.value = Math.min(score, max);
    bar.setAttribute('data-score-bar', '');
    wrap.appendChild(value);
    wrap.appendChild(bar);
    return wrap;
  }

  function setScore(container, score) {
    var value = $('[data-score-value]', container);
    var bar = $('[data-score-bar]', container);
    if (value) value.textContent = score;
    if (bar) {
      bar.value = Math.min(score, bar.max || score);
      bar.textContent = score + ' of ' + bar.max;
    }
  }

  // The grade badge (templates/partials/grade.html): fit letter x engagement digit.
  function gradeTitle(grade, fit) {
    return 'Grade ' + grade + ': fit ' + grade.charAt(0) + ' (fit score ' + fit + '), engagement ' + grade.charAt(1);
  }

  function fillGrade(badge, grade, fit) {
    badge.className = 'grade grade--' + grade.charAt(0).toLowerCase();
    badge.title = gradeTitle(grade, fit);
    badge.replaceChildren(el('span', 'visually-hidden', 'Grade '), document.createTextNode(grade));
  }

  function gradeNode(grade, fit) {
    var badge = el('span');
    badge.setAttribute('data-grade', '');
    fillGrade(badge, grade, fit);
    return badge;
  }

  // Frames without a grade (an older server) leave the badges as they are.
  function setGrade(root, grade, fit) {
    if (typeof grade !== 'string' || !/^[A-D][1-4]$/.test(grade)) return false;
    var changed = false;
    $all('[data-grade]', root).forEach(function (badge) {
      if (badge.textContent.replace('Grade ', '').trim() !== grade) changed = true;
      fillGrade(badge, grade, fit);
    });
    if (typeof fit === 'number') $all('[data-fit]', root).forEach(function (node) { node.textContent = fit; });
    return changed;
  }

  // ---- leaderboard rows --------------------------------------------------------

  function leaderRow(leader, table) {
    var compact = table.getAttribute('data-compact') === '1';
    var row = el('tr');
    row.setAttribute('data-lead-id', leader.lead_id);
    var rankCell = el('td', 'num');
    var rank = el('span', 'rank', leader.rank);
    rank.setAttribute('data-rank-value', '');
    rankCell.appendChild(rank);
    row.appendChild(rankCell);
    var leadCell = el('td', 'truncate');
    var link = el('a', 'cell-primary', leader.email);
    link.href = leadUrl(leader.lead_id);
    link.setAttribute('data-lead-email', '');
    leadCell.appendChild(link);
    if (leader.name) {
      var name = el('span', 'cell-secondary', leader.name);
      name.setAttribute('data-lead-name', '');
      leadCell.appendChild(name);
    }
    row.appendChild(leadCell);
    if (!compact) {
      row.appendChild(el('td', 'hide-mobile', leader.company || '—'));
      var stageCell = el('td', 'hide-mobile');
      stageCell.appendChild(stageBadge(leader.stage, parseStages(table)));
      row.appendChild(stageCell);
    }
    var gradeCell = el('td', 'grade-col');
    if (leader.grade) gradeCell.appendChild(gradeNode(leader.grade, leader.fit_score));
    row.appendChild(gradeCell);
    var scoreCell = el('td', 'num');
    scoreCell.appendChild(scoreNode(leader.current_score, leader.max_score || 1000));
    row.appendChild(scoreCell);
    var fitCell = el('td', 'num');
    var fit = el('span', 'fit', leader.fit_score === undefined ? '' : leader.fit_score);
    fit.setAttribute('data-fit', '');
    fitCell.appendChild(fit);
    row.appendChild(fitCell);
    return row;
  }

  function rowState(row) {
    var value = $('[data-score-value]', row);
    return {
      rank: Number(row.getAttribute('data-rank') || ($('[data-rank-value]', row) || {}).textContent),
      score: value ? value.textContent.trim() : ''
    };
  }

  // Replace the rows of a leaderboard table, animating what moved: rank-up / rank-down for a
  // changed position (a newcomer counts as up), a flash for a changed score at the same rank.
  function applyLeaderRows(table, newRows) {
    var tbody = table.tBodies[0];
    var before = {};
    $all('tr[data-lead-id]', tbody).forEach(function (row) { before[row.getAttribute('data-lead-id')] = rowState(row); });
    var fragment = document.createDocumentFragment();
    var moved = [];
    newRows.forEach(function (row, index) {
      var rank = index + 1;
      row.setAttribute('data-rank', rank);
      var rankValue = $('[data-rank-value]', row);
      if (rankValue) {
        rankValue.textContent = rank;
        rankValue.classList.toggle('rank--top', rank <= 3);
      }
      var old = before[row.getAttribute('data-lead-id')];
      var now = rowState(row);
      if (!old || old.rank > rank) moved.push([row, 'up']);
      else if (old.rank < rank) moved.push([row, 'down']);
      else if (old.score !== now.score) moved.push([row, 'flash']);
      fragment.appendChild(row);
    });
    tbody.replaceChildren(fragment);
    moved.forEach(function (item) {
      if (item[1] === 'flash') Live.flash(item[0]);
      else Live.rankChange(item[0], item[1]);
    });
    var region = table.closest('[data-region]') || document;
    var empty = $('[data-leaders-empty]', region);
    if (empty) empty.hidden = newRows.length > 0;
    var wrap = table.closest('.table-wrap');
    if (wrap) wrap.hidden = newRows.length === 0;
  }

  function leadersFromFrame(table, leaders) {
    var existing = {};
    $all('tr[data-lead-id]', table.tBodies[0]).forEach(function (row) { existing[row.getAttribute('data-lead-id')] = row; });
    return leaders.map(function (leader) {
      if (!existing[leader.lead_id]) return leaderRow(leader, table);
      // A copy: applyLeaderRows compares it with the row still on screen.
      var row = existing[leader.lead_id].cloneNode(true);
      setScore(row, leader.current_score);
      setGrade(row, leader.grade, leader.fit_score);
      var email = $('[data-lead-email]', row);
      if (email) email.textContent = leader.email;
      return row;
    });
  }

  // ---- pages -------------------------------------------------------------------

  function dashboard() {
    var chartData = readJson('chart-data');
    var distributionChart = null;
    var hourlyChart = null;

    function drawCharts(data) {
      if (!Charts || !data) return;
      var distCanvas = document.getElementById('distribution-chart');
      if (distCanvas && data.distribution.labels.length) {
        if (distributionChart) Charts.setBars(distributionChart, data.distribution.labels, data.distribution.values);
        else distributionChart = Charts.bar(distCanvas, data.distribution.labels, data.distribution.values, { label: 'Leads' });
      }
      var hourlyCanvas = document.getElementById('hourly-chart');
      if (hourlyCanvas) {
        if (hourlyChart) Charts.setPoints(hourlyChart, data.per_hour);
        else hourlyChart = Charts.line(hourlyCanvas, { points: data.per_hour, label: 'Events', stepped: false, unit: 'hour', yMin: 0 });
      }
    }
    drawCharts(chartData);

    var refreshFigures = debounce(function () {
      refreshRegions(['kpis', 'chart-data']).then(function () { drawCharts(readJson('chart-data')); });
    }, 1500, 4000);

    Live.on('score.changed', function (msg) {
      var list = $('[data-feed]');
      if (!list) return;
      var row = el('li', 'feed__item');
      row.setAttribute('data-lead-id', msg.lead_id);
      var main = el('div', 'feed__main');
      var link = el('a', 'feed__lead', msg.email);
      link.href = leadUrl(msg.lead_id);
      main.appendChild(link);
      var meta = el('span', 'feed__meta');
      meta.appendChild(el('span', 'mono', msg.event_type));
      if (msg.late) { meta.appendChild(document.createTextNode(' ')); meta.appendChild(el('span', 'badge badge--late', 'Late')); }
      meta.appendChild(document.createTextNode(' · '));
      meta.appendChild(timeNode(msg.timestamp, 'datetime'));
      main.appendChild(meta);
      row.appendChild(main);
      var score = el('div', 'feed__score');
      score.appendChild(el('span', 'score-delta score-delta--' + (msg.delta < 0 ? 'down' : 'up'), signed(msg.delta)));
      var fresh = el('span', 'feed__new', msg.new_score);
      fresh.title = msg.previous_score + ' → ' + msg.new_score;
      score.appendChild(fresh);
      row.appendChild(score);
      list.insertBefore(row, list.firstChild);
      while (list.children.length > 20) list.removeChild(list.lastElementChild);
      Live.flash(row);
      var empty = $('[data-feed-empty]');
      if (empty) empty.hidden = true;
      refreshFigures();
    });

    Live.on('leaderboard.updated', function (msg) {
      var table = $('[data-leaders]');
      if (table) applyLeaderRows(table, leadersFromFrame(table, msg.leaders || []));
    });

    Live.on('reconnected', function () {
      refreshRegions(['kpis', 'chart-data', 'feed', 'leaders']).then(function () { drawCharts(readJson('chart-data')); });
    });
  }

  function leaderboardPage() {
    function refetch() {
      var table = $('[data-leaders]');
      if (!table) return;
      fetch(window.location.href, { credentials: 'same-origin', headers: { 'X-Requested-With': 'fetch' } })
        .then(function (response) { if (!response.ok) throw new Error('HTTP ' + response.status); return response.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.querySelector('[data-leaders]');
          if (!fresh) return;
          var rows = $all('tr[data-lead-id]', fresh.tBodies[0]).map(function (row) { return document.importNode(row, true); });
          applyLeaderRows(table, rows);
          Live.localizeTimes(table);
        })
        .catch(function (err) { Live.toast('Could not refresh the leaderboard (' + err.message + ').', { level: 'warning' }); });
    }
    var schedule = debounce(refetch, 150, 600);
    Live.on('leaderboard.updated', schedule);
    Live.on('reconnected', schedule);
  }

  function leadPage() {
    var chart = null;
    var chartWrap = $('[data-chart-wrap]');

    function drawChart(points) {
      if (!Charts || !points) return;
      var canvas = document.getElementById('score-chart');
      var empty = $('[data-chart-empty]');
      if (chartWrap) chartWrap.hidden = points.length === 0;
      if (empty) empty.hidden = points.length > 0;
      if (!canvas || !points.length) return;
      if (chart) Charts.setPoints(chart, points);
      else chart = Charts.line(canvas, { points: points, label: 'Score', yMin: 0 });
    }
    drawChart(readJson('timeline-data'));

    function knownIds(selector, attribute) {
      var ids = {};
      $all(selector).forEach(function (row) { ids[row.getAttribute(attribute) + '|' + (row.getAttribute('data-status') || '')] = true; });
      return ids;
    }

    function refreshTables() {
      var events = knownIds('[data-events-table] tr[data-event-id]', 'data-event-id');
      var changes = knownIds('[data-history-table] tr[data-change-id]', 'data-change-id');
      return refreshRegions(['events', 'history', 'timeline', 'facts', 'why', 'fit']).then(function () {
        $all('[data-events-table] tr[data-event-id]').forEach(function (row) {
          if (!events[row.getAttribute('data-event-id') + '|' + row.getAttribute('data-status')]) Live.flash(row);
        });
        $all('[data-history-table] tr[data-change-id]').forEach(function (row) {
          if (!changes[row.getAttribute('data-change-id') + '|']) Live.flash(row);
        });
        drawChart(readJson('timeline-data'));
      });
    }
    var scheduleTables = debounce(refreshTables, 250, 1000);

    Live.on('score.changed', function (msg) {
      var region = $('[data-region="score"]');
      if (region) {
        var max = Number(region.getAttribute('data-max-score')) || 1;
        var value = $('[data-lead-score]', region);
        var bar = $('[data-lead-progress]', region);
        var percent = $('[data-lead-percent]', region);
        var stageBadge = $('[data-lead-stage]', region);
        if (value) { value.textContent = msg.new_score; Live.flash(value); }
        if (bar) {
          bar.value = Math.min(msg.new_score, max);
          bar.textContent = msg.new_score + ' of ' + max;
          bar.setAttribute('aria-label', 'Score ' + msg.new_score + ' of ' + max);
        }
        if (percent) percent.textContent = Math.max(0, Math.min(100, Math.round(100 * msg.new_score / max)));
        if (stageBadge && typeof msg.stage === 'string') {
          if (stageBadge.textContent !== msg.stage) Live.flash(stageBadge);
          stageBadge.textContent = msg.stage;
          stageBadge.className = 'badge badge--stage badge--stage-' + stageColor(msg.stage, parseStages(region));
          stageBadge.hidden = !msg.stage;
        }
      }
      // Every grade badge of the page (score card, fit card) and the fit figure follow the frame.
      if (setGrade(document, msg.grade, msg.fit_score)) $all('[data-grade]').forEach(function (badge) { Live.flash(badge); });
      if (typeof msg.fit_score === 'number') {
        $all('[data-lead-fit]').forEach(function (node) { node.textContent = msg.fit_score; });
      }
      // An in-order event extends the curve at once; a late one (or a rescore) re-draws it from
      // the server's checkpoints when the tables come back.
      if (!msg.late && msg.event_id && Charts) {
        if (chart) Charts.pushPoint(chart, { x: msg.timestamp, y: msg.new_score });
        else drawChart([{ x: msg.timestamp, y: msg.new_score }]);
      }
      scheduleTables();
    });

    Live.on('reconnected', function () {
      refreshRegions(['score']).then(refreshTables);
    });
  }

  function leadsPage() {
    // Visible rows follow their lead's score live (the order is kept until the next search).
    Live.on('score.changed', function (msg) {
      $all('[data-lead-table] tr[data-lead-id="' + msg.lead_id + '"]').forEach(function (row) {
        setScore(row, msg.new_score);
        setGrade(row, msg.grade, msg.fit_score);
        Live.flash(row);
      });
    });
    // After an htmx search, the CSV link exports what is on screen.
    document.body.addEventListener('htmx:afterSettle', function () {
      var link = $('[data-export-link]');
      if (link) link.href = link.pathname + window.location.search;
    });
    Live.on('reconnected', function () { refreshRegions(['lead-table']); });
  }

  function eventsPage() {
    function refresh() {
      var region = $('[data-region="events"]');
      if (!region || region.getAttribute('data-live-page') !== '1') return;
      var seen = {};
      $all('tr[data-event-id]', region).forEach(function (row) {
        seen[row.getAttribute('data-event-id') + '|' + row.getAttribute('data-status')] = true;
      });
      refreshRegions(['events']).then(function () {
        $all('[data-region="events"] tr[data-event-id]').forEach(function (row) {
          if (!seen[row.getAttribute('data-event-id') + '|' + row.getAttribute('data-status')]) Live.flash(row);
        });
      });
    }
    var schedule = debounce(refresh, 400, 1500);
    Live.on('score.changed', schedule);
    Live.on('reconnected', schedule);
  }

  // The Alerts page: both tables are re-read (first page only) and the new rows flash; a frame
  // carries at most 50 items, the table is the truth (filters, paging, server formatting).
  function alertsPage() {
    function refresher(name, rowSelector, keyOf) {
      return function () {
        var region = $('[data-region="' + name + '"]');
        if (!region || region.getAttribute('data-live-page') !== '1') return;
        var seen = {};
        $all(rowSelector, region).forEach(function (row) { seen[keyOf(row)] = true; });
        refreshRegions([name]).then(function () {
          $all('[data-region="' + name + '"] ' + rowSelector).forEach(function (row) {
            if (!seen[keyOf(row)]) Live.flash(row);
          });
        });
      };
    }
    var alerts = debounce(refresher('alerts', 'tr[data-alert-uid]', function (row) { return row.getAttribute('data-alert-uid'); }), 300, 1200);
    var deliveries = debounce(refresher('deliveries', 'tr[data-delivery-id]', function (row) {
      return row.getAttribute('data-delivery-id') + '|' + row.getAttribute('data-status');
    }), 1000, 3000);
    Live.on('alerts.created', function () { alerts(); deliveries(); });
    Live.on('deliveries.updated', deliveries);
    Live.on('reconnected', function () { alerts(); deliveries(); });
  }

  function init() {
    $all('select[data-autosubmit]').forEach(function (select) {
      select.addEventListener('change', function () {
        if (select.form.requestSubmit) select.form.requestSubmit();
        else select.form.submit();
      });
    });
    var classes = document.body.classList;
    if (classes.contains('page-dashboard')) dashboard();
    if (classes.contains('page-leaderboard')) leaderboardPage();
    if (classes.contains('page-lead')) leadPage();
    if (classes.contains('page-leads')) leadsPage();
    if (classes.contains('page-events')) eventsPage();
    if (classes.contains('page-alerts')) alertsPage();
  }

  window.TargetGridPages = { refreshRegions: refreshRegions, applyLeaderRows: applyLeaderRows, debounce: debounce };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})(window, document);
