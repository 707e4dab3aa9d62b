/*
 * TargetGridLive: the page's one WebSocket, plus small DOM helpers.
 *
 * No dependencies, no build step. Loaded by templates/base.html on every page.
 *
 *   TargetGridLive.on('score.changed', function (msg) { ... })  -> unsubscribe function
 *   TargetGridLive.on('leaderboard.updated', fn) / on('import.progress', fn)
 *   TargetGridLive.on('*', fn)            every frame, and the synthetic events below
 *   TargetGridLive.on('reconnected', fn)  after the socket came back: refetch state
 *   TargetGridLive.on('status', fn)       {type: 'status', state: 'connected'|'reconnecting'|'offline'}
 *
 * The socket path comes from <body data-ws-url="/ws/scores/">; an empty value means
 * "no socket on this page". Every frame is a JSON object with a "type"; each
 * dispatched message is also fired on document.body as a DOM event named
 * "tg:<type>" (detail = the message), so htmx can react to it, for instance
 * hx-trigger="tg:reconnected from:body".
 */
(function (window, document) {
  'use strict';

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_CAP_MS = 10000;
  var OFFLINE_AFTER_FAILURES = 5;     // consecutive failed attempts before "offline"
  var STATES = ['connected', 'reconnecting', 'offline'];
  var STATE_TEXT = {
    connected: 'Live',
    reconnecting: 'Reconnecting…',
    offline: 'Offline'
  };

  var subscribers = Object.create(null);   // type -> array of functions
  var socket = null;
  var state = 'reconnecting';
  var failures = 0;           // consecutive attempts that did not open
  var everOpened = false;
  var retryTimer = null;
  var stopped = false;

  // ---- subscriptions -------------------------------------------------------

  function on(type, fn) {
    if (typeof fn !== 'function') throw new TypeError('TargetGridLive.on: handler must be a function');
    (subscribers[type] = subscribers[type] || []).push(fn);
    return function () { off(type, fn); };
  }

  function off(type, fn) {
    var list = subscribers[type];
    if (!list) return;
    var i = list.indexOf(fn);
    if (i !== -1) list.splice(i, 1);
  }

  function callEach(list, msg) {
    if (!list) return;
    list.slice().forEach(function (fn) {
      try {
        fn(msg);
      } catch (err) {
        // One broken handler must not stop the others.
        if (window.console) console.error('TargetGridLive handler for "' + msg.type + '" failed', err);
      }
    });
  }

  function dispatch(msg) {
    callEach(subscribers[msg.type], msg);
    callEach(subscribers['*'], msg);
    if (document.body && typeof window.CustomEvent === 'function') {
      document.body.dispatchEvent(new CustomEvent('tg:' + msg.type, { detail: msg }));
    }
  }

  // ---- connection ----------------------------------------------------------

  function socketUrl() {
    var path = document.body ? document.body.dataset.wsUrl : '';
    if (!path) return null;
    if (/^wss?:\/\//.test(path)) return path;
    var scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    return scheme + '://' + window.location.host + path;
  }

  // label: optional text instead of the state's usual one ("Connecting…" on the first attempt).
  function setState(next, label) {
    var changed = next !== state;
    state = next;
    var nodes = document.querySelectorAll('[data-live-indicator]');
    Array.prototype.forEach.call(nodes, function (node) {
      STATES.forEach(function (s) { node.classList.toggle('live-indicator--' + s, s === next); });
      node.dataset.state = next;
      var text = node.querySelector('[data-live-text]') || node;
      text.textContent = label || STATE_TEXT[next];
      node.title = next === 'connected' ? 'Receiving live updates'
        : next === 'reconnecting' ? 'Connection lost, reconnecting'
        : 'No connection; retrying in the background';
    });
    if (changed) dispatch({ type: 'status', state: next });
  }

  // Exponential back-off with "equal jitter": half the window fixed, half random.
  function backoffDelay(attempt) {
    var windowMs = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
    return Math.round(windowMs / 2 + Math.random() * windowMs / 2);
  }

  function connect() {
    var url = socketUrl();
    if (!url || stopped) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    if (socket && (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING)) return;

    var ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      // A malformed URL throws synchronously; treat it like a failed attempt.
      scheduleReconnect();
      return;
    }
    socket = ws;

    ws.onopen = function () {
      var wasReconnect = everOpened;
      everOpened = true;
      failures = 0;
      setState('connected');
      if (wasReconnect) dispatch({ type: 'reconnected' });
    };

    ws.onmessage = function (event) {
      var msg;
      try {
        msg = JSON.parse(event.data);
      } catch (err) {
        if (window.console) console.warn('TargetGridLive: ignored a frame that is not JSON', event.data);
        return;
      }
      if (!msg || typeof msg.type !== 'string') {
        if (window.console) console.warn('TargetGridLive: ignored a frame without "type"', msg);
        return;
      }
      dispatch(msg);
    };

    ws.onclose = function () {
      if (socket !== ws) return;     // an old socket closing after a manual reconnect
      socket = null;
      if (stopped) return;
      scheduleReconnect();
    };
    // onerror is always followed by onclose; nothing to do here.
    ws.onerror = function () {};
  }

  function scheduleReconnect() {
    if (stopped || retryTimer) return;
    var delay = backoffDelay(failures);
    failures += 1;
    var offline = navigator.onLine === false || failures >= OFFLINE_AFTER_FAILURES;
    setState(offline ? 'offline' : 'reconnecting');
    retryTimer = setTimeout(function () {
      retryTimer = null;
      connect();
    }, delay);
  }

  // Retry at once when the network or the tab comes back instead of waiting out the back-off.
  function retryNow() {
    if (stopped || socket) return;
    failures = 0;
    connect();
  }

  function start() {
    stopped = false;
    connect();
  }

  function stop() {
    stopped = true;
    clearTimeout(retryTimer);
    retryTimer = null;
    if (socket) {
      var ws = socket;
      socket = null;
      ws.close(1000, 'client stop');
    }
  }

  function send(payload) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(typeof payload === 'string' ? payload : JSON.stringify(payload));
    return true;
  }

  window.addEventListener('online', retryNow);
  window.addEventListener('offline', function () {
    if (state !== 'connected') setState('offline');
  });
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') retryNow();
  });

  // ---- time ------------------------------------------------------------------

  var FORMATS = {
    datetime: { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short' },
    datetimeseconds: { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit', timeZoneName: 'short' },
    date: { year: 'numeric', month: 'short', day: 'numeric' },
    time: { hour: 'numeric', minute: '2-digit', second: '2-digit', timeZoneName: 'short' }
  };
  var formatterCache = Object.create(null);

  function formatter(style) {
    var key = FORMATS[style] ? style : 'datetime';
    if (!formatterCache[key]) formatterCache[key] = new Intl.DateTimeFormat(undefined, FORMATS[key]);
    return formatterCache[key];
  }

  function toDate(value) {
    if (value instanceof Date) return value;
    if (typeof value === 'number') return new Date(value);
    return new Date(String(value));
  }

  // formatTime('2026-01-01T10:00:00Z') -> "Jan 1, 2026, 11:00 AM GMT+1" (viewer's zone and locale).
  // style: 'datetime' (default) | 'datetimeseconds' | 'date' | 'time'. Returns '' for an invalid value.
  function formatTime(iso, style) {
    if (iso === null || iso === undefined || iso === '') return '';
    var date = toDate(iso);
    if (isNaN(date.getTime())) return '';
    return formatter(style).format(date);
  }

  // <time datetime="2026-01-01T10:00:00Z" data-local>…</time>; data-local="time" etc. picks the style.
  // The server's text stays as the tooltip, so the UTC value is one hover away.
  function localizeTimes(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var nodes = Array.prototype.slice.call(scope.querySelectorAll('time[datetime][data-local]'));
    if (scope.matches && scope.matches('time[datetime][data-local]')) nodes.push(scope);
    nodes.forEach(function (node) {
      var text = formatTime(node.getAttribute('datetime'), node.getAttribute('data-local') || 'datetime');
      if (!text) return;
      if (!node.title && node.textContent.trim()) node.title = node.textContent.trim();
      node.textContent = text;
    });
  }

  // ---- DOM helpers -----------------------------------------------------------

  function restartAnimation(el, className, durationMs) {
    if (!el || !el.classList) return;
    el.classList.remove(className);
    void el.offsetWidth;             // reflow, so the same class can replay
    el.classList.add(className);
    clearTimeout(el['_tg_' + className]);
    // Remove by timer rather than animationend: rows animate their cells, and
    // reduced-motion styles may drop the animation entirely.
    el['_tg_' + className] = setTimeout(function () { el.classList.remove(className); }, durationMs);
  }

  // Yellow highlight that fades out (class is-flashing), e.g. a row whose score just changed.
  function flash(el) {
    restartAnimation(el, 'is-flashing', 1900);
  }

  // direction: 'up' (better rank) or 'down'; classes rank-up / rank-down.
  function rankChange(el, direction) {
    if (!el || !el.classList) return;
    var up = direction === 'up';
    el.classList.remove(up ? 'rank-down' : 'rank-up');
    restartAnimation(el, up ? 'rank-up' : 'rank-down', 2100);
  }

  // Floating notice in the [data-toast-region]; level: info | success | warning | error.
  // Errors stay until dismissed; others leave after `timeout` ms (default 6000).
  function toast(message, options) {
    var opts = options || {};
    var level = opts.level || 'info';
    var region = document.querySelector('[data-toast-region]');
    if (!region) {
      region = document.createElement('div');
      region.className = 'toast-region';
      region.setAttribute('data-toast-region', '');
      region.setAttribute('aria-live', 'polite');
      document.body.appendChild(region);
    }
    var node = document.createElement('div');
    node.className = 'toast toast--' + level;
    node.setAttribute('role', level === 'error' ? 'alert' : 'status');
    var body = document.createElement('div');
    body.className = 'toast__body';
    if (opts.title) {
      var title = document.createElement('div');
      title.className = 'toast__title';
      title.textContent = opts.title;
      body.appendChild(title);
    }
    body.appendChild(document.createTextNode(message));
    var close = document.createElement('button');
    close.type = 'button';
    close.className = 'toast__close';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '\u00d7';
    node.appendChild(body);
    node.appendChild(close);
    region.appendChild(node);

    var timer = null;
    function dismiss() {
      clearTimeout(timer);
      node.classList.add('is-leaving');
      setTimeout(function () { if (node.parentNode) node.parentNode.removeChild(node); }, 200);
    }
    close.addEventListener('click', dismiss);
    var timeout = opts.timeout !== undefined ? opts.timeout : (level === 'error' ? 0 : 6000);
    if (timeout > 0) timer = setTimeout(dismiss, timeout);
    return { element: node, dismiss: dismiss };
  }

  // Server-rendered messages (base.html) get their close buttons once JS runs.
  function enableDismissButtons(root) {
    var scope = root && root.querySelectorAll ? root : document;
    Array.prototype.forEach.call(scope.querySelectorAll('[data-dismiss]'), function (button) {
      button.hidden = false;
      if (button._tgDismiss) return;
      button._tgDismiss = true;
      button.addEventListener('click', function () {
        var item = button.closest('.alert, .toast');
        if (item && item.parentNode) item.parentNode.removeChild(item);
      });
    });
  }

  function init() {
    localizeTimes(document);
    enableDismissButtons(document);
    // Content swapped in by htmx gets the same treatment.
    document.body.addEventListener('htmx:load', function (event) {
      localizeTimes(event.target);
      enableDismissButtons(event.target);
    });
    if (socketUrl()) {
      setState('reconnecting', 'Connecting…');
      start();
    }
  }

  window.TargetGridLive = {
    on: on,
    off: off,
    send: send,
    start: start,
    stop: stop,
    state: function () { return state; },
    formatTime: formatTime,
    localizeTimes: localizeTimes,
    flash: flash,
    rankChange: rankChange,
    toast: toast,
    // for tests: the delay before retry number `attempt` (0-based)
    _backoffDelay: backoffDelay
  };

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})(window, document);
