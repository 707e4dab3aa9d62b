/*
 * The rescore job's progress page (admin): live over the /ws/rescore/ WebSocket group, with
 * polling of the job's JSON as a fallback (every second while the socket is down, every five
 * seconds while it is up, in case a frame was lost). Progress is shown monotonically: a frame with
 * fewer leads done than already shown is ignored, and a finished job never goes back to running.
 * No dependencies, no build step.
 */
(function (window, document) {
  'use strict';

  var TERMINAL = { completed: true, superseded: true, failed: true };
  var LABELS = {
    queued: 'Queued', running: 'Running', completed: 'Completed',
    superseded: 'Superseded by a newer version', failed: 'Failed'
  };

  function start(root) {
    var jobId = Number(root.dataset.rescoreJob);
    var progressUrl = root.dataset.progressUrl;
    var shownDone = Number(root.dataset.done || 0);
    var shownStatus = root.dataset.status || 'queued';
    var socket = null;
    var pollTimer = null;
    var finishedFetched = false;

    function q(selector) { return root.querySelector(selector); }
    function setText(selector, value) {
      var el = q(selector);
      if (el && value !== undefined && value !== null) el.textContent = String(value);
    }
    function liveState(text) { setText('[data-live-state]', text); }

    function apply(p) {
      if (!p || Number(p.id) !== jobId) return;
      var done = Number(p.done);
      if (TERMINAL[shownStatus] && !TERMINAL[p.status]) return;   // never back from finished
      if (done < shownDone) return;                                // never backwards
      shownDone = done;
      shownStatus = p.status;
      root.dataset.done = String(done);
      root.dataset.status = p.status;
      var percent = Number(p.percent);
      var bar = q('[data-rescore-bar]');
      if (bar) bar.value = percent;
      setText('[data-rescore-percent]', percent.toFixed(1) + '%');
      setText('[data-rescore-done]', done);
      setText('[data-rescore-total]', p.total);
      setText('[data-rescore-changed]', p.changed);
      setText('[data-rescore-status]', p.status_display || LABELS[p.status] || p.status);
      if (p.started_at) setText('[data-rescore-started]', p.started_at_display || p.started_at);
      if (p.finished_at) setText('[data-rescore-finished]', p.finished_at_display || p.finished_at);
      if (TERMINAL[p.status]) {
        if (!finishedFetched) { finishedFetched = true; if (!p.finished_at) poll(); }
        stop();
      }
    }

    function poll() {
      if (!window.fetch) return;
      window.fetch(progressUrl, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(apply)
        .catch(function () { /* the next poll tries again */ });
    }

    function schedule(ms) {
      if (pollTimer) window.clearInterval(pollTimer);
      pollTimer = window.setInterval(poll, ms);
    }

    function stop() {
      if (pollTimer) { window.clearInterval(pollTimer); pollTimer = null; }
      if (socket) { socket.onclose = null; try { socket.close(); } catch (e) { /* closed */ } socket = null; }
      liveState('');
    }

    function connect() {
      if (TERMINAL[shownStatus] || !window.WebSocket) { schedule(1000); return; }
      var scheme = window.location.protocol === 'https:' ? 'wss://' : 'ws://';
      try {
        socket = new window.WebSocket(scheme + window.location.host + root.dataset.wsPath);
      } catch (e) {
        liveState('(polling)');
        schedule(1000);
        return;
      }
      socket.onopen = function () { liveState('(live)'); schedule(5000); poll(); };
      socket.onmessage = function (message) {
        var frame;
        try { frame = JSON.parse(message.data); } catch (e) { return; }
        if (frame && frame.type === 'rescore.progress') apply(frame);
      };
      socket.onclose = function () {
        socket = null;
        if (TERMINAL[shownStatus]) return;
        liveState('(polling)');
        schedule(1000);
        window.setTimeout(connect, 5000);
      };
    }

    if (TERMINAL[shownStatus]) return;
    poll();
    connect();
  }

  function init() {
    var root = document.querySelector('[data-rescore-job]');
    if (root) start(root);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})(window, document);
