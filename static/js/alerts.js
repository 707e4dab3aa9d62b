/*
 * TargetGridAlerts: the alert toasts of every operator page (loaded by templates/base.html after
 * live.js; no dependencies, no build step).
 *
 * The page's socket (scores, one lead, or the Alerts page's) joins the server's "alerts" group and
 * receives one "alerts.created" frame per scoring transaction:
 *   {type: "alerts.created", total: 1000, alerts: [{kind, uid, lead_id, email, name, stage, score,
 *    from_stage, to_stage, direction, threshold, cause, endpoint: {id, name}}, ... at most 50]}
 *
 * A stack of at most maxVisible() toasts (3, or 2 on a phone) (role=status in the polite live region), newest at the
 * bottom; the alerts of one lead in one frame make one toast (a stage change wins over a score
 * crossing); whatever does not fit is counted in a single "+N more alerts" toast that links to the
 * Alerts page. So a burst of 1,000 alerts adds at most maxVisible() + 1 nodes. Each toast leaves
 * after TIMEOUT_MS (paused while hovered or focused) or with its dismiss button.
 * DOM is built with textContent only (frame values are never parsed as HTML).
 */
(function (window, document) {
  'use strict';

  var Live = window.TargetGridLive;
  if (!Live) return;

  // Three on a laptop, two on a phone (the stack must leave the page usable).
  function maxVisible() {
    return window.matchMedia && window.matchMedia('(max-width: 640px)').matches ? 2 : 3;
  }
  var TIMEOUT_MS = 8000;
  var SEEN_LIMIT = 500;

  var visible = [];        // alert toasts on screen, oldest first: {node, dismiss}
  var summary = null;      // the "+N more" toast: {node, count, dismiss, setCount}
  var seen = [];           // uids already toasted (a frame delivered twice toasts once)
  var seenSet = Object.create(null);

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function region() {
    var node = document.querySelector('[data-toast-region]');
    if (!node) {
      node = el('div', 'toast-region');
      node.setAttribute('data-toast-region', '');
      node.setAttribute('aria-live', 'polite');
      document.body.appendChild(node);
    }
    return node;
  }

  function remember(uid) {
    if (!uid) return true;
    if (seenSet[uid]) return false;
    seenSet[uid] = true;
    seen.push(uid);
    if (seen.length > SEEN_LIMIT) delete seenSet[seen.shift()];
    return true;
  }

  // A toast node with a body and a dismiss button; leaves after TIMEOUT_MS unless hovered/focused.
  function makeToast(level, onGone) {
    var node = el('div', 'toast toast--alert toast--' + level);
    node.setAttribute('role', 'status');
    var body = el('div', 'toast__body');
    var close = el('button', 'toast__close', '\u00d7');
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss alert');
    node.appendChild(body);
    node.appendChild(close);

    var timer = null;
    var gone = false;
    function dismiss() {
      if (gone) return;
      gone = true;
      clearTimeout(timer);
      onGone();
      node.classList.add('is-leaving');
      setTimeout(function () { if (node.parentNode) node.parentNode.removeChild(node); }, 200);
    }
    function arm() {
      clearTimeout(timer);
      timer = setTimeout(dismiss, TIMEOUT_MS);
    }
    function hold() { clearTimeout(timer); }
    close.addEventListener('click', dismiss);
    node.addEventListener('mouseenter', hold);
    node.addEventListener('mouseleave', arm);
    node.addEventListener('focusin', hold);
    node.addEventListener('focusout', arm);
    arm();
    return { node: node, body: body, dismiss: dismiss, arm: arm };
  }

  function leadUrl(id) { return '/leads/' + encodeURIComponent(id) + '/'; }

  // Title and text of one alert.
  function describe(alert) {
    var who = alert.email || alert.name || 'A lead';
    if (alert.kind === 'lead.stage_changed') {
      var up = alert.direction !== 'down';
      return {
        level: up ? 'success' : 'info',
        title: (up ? 'Now ' : 'Back to ') + (alert.to_stage || 'no stage'),
        who: who,
        detail: (alert.from_stage || 'no stage') + ' \u2192 ' + (alert.to_stage || 'no stage') +
          (typeof alert.score === 'number' ? ' \u00b7 score ' + alert.score : '')
      };
    }
    if (alert.kind === 'lead.score_crossed') {
      var rising = alert.direction !== 'down';
      return {
        level: rising ? 'success' : 'info',
        title: (rising ? 'Score reached ' : 'Score fell below ') + alert.threshold,
        who: who,
        detail: (typeof alert.score === 'number' ? 'score ' + alert.score : '') + (alert.stage ? ' \u00b7 ' + alert.stage : '')
      };
    }
    if (alert.kind === 'endpoint.paused') {
      var name = alert.endpoint && alert.endpoint.name ? alert.endpoint.name : 'A webhook endpoint';
      return { level: 'warning', title: 'Webhook endpoint paused', who: name, detail: 'Deliveries wait until it is resumed (Admin).' };
    }
    return { level: 'info', title: alert.kind || 'Alert', who: who, detail: '' };
  }

  function alertToast(alert) {
    var text = describe(alert);
    var entry = null;
    var toast = makeToast(text.level, function () {
      var i = visible.indexOf(entry);
      if (i !== -1) visible.splice(i, 1);
    });
    toast.node.setAttribute('data-alert-toast', alert.kind || '');
    if (alert.lead_id) toast.node.setAttribute('data-lead-id', alert.lead_id);
    toast.body.appendChild(el('div', 'toast__title', text.title));
    var line = el('div', 'toast__text');
    if (alert.lead_id) {
      var link = el('a', 'toast__link', text.who);
      link.href = leadUrl(alert.lead_id);
      line.appendChild(link);
    } else {
      line.appendChild(document.createTextNode(text.who));
    }
    if (alert.name && alert.email) line.appendChild(el('span', 'toast__meta', ' (' + alert.name + ')'));
    toast.body.appendChild(line);
    if (text.detail) toast.body.appendChild(el('div', 'toast__meta', text.detail));
    entry = toast;
    return toast;
  }

  function addToSummary(count) {
    if (count <= 0) return;
    if (!summary) {
      var toast = makeToast('info', function () { summary = null; });
      toast.node.setAttribute('data-alert-summary', '');
      var text = el('span', 'toast__title');
      var link = el('a', 'toast__link', 'See all alerts');
      link.href = '/alerts/';
      toast.body.appendChild(text);
      toast.body.appendChild(document.createTextNode(' '));
      toast.body.appendChild(link);
      toast.count = 0;
      toast.text = text;
      summary = toast;
      region().appendChild(toast.node);
    } else {
      summary.arm();
    }
    summary.count += count;
    summary.node.setAttribute('data-count', summary.count);
    summary.text.textContent = '+' + summary.count + ' more alert' + (summary.count === 1 ? '' : 's');
  }

  // One toast per lead (or endpoint) of the frame; a stage change wins over a score crossing.
  function perSubject(alerts) {
    var order = [];
    var bySubject = Object.create(null);
    alerts.forEach(function (alert) {
      if (!alert || !remember(alert.uid)) return;
      var key = alert.lead_id ? 'lead:' + alert.lead_id
        : alert.endpoint && alert.endpoint.id !== undefined ? 'endpoint:' + alert.endpoint.id
        : 'alert:' + alert.uid;
      var current = bySubject[key];
      if (!current) {
        bySubject[key] = alert;
        order.push(key);
      } else if (current.kind !== 'lead.stage_changed' && alert.kind === 'lead.stage_changed') {
        bySubject[key] = alert;
      }
    });
    return order.map(function (key) { return bySubject[key]; });
  }

  function show(msg) {
    var alerts = Array.isArray(msg.alerts) ? msg.alerts : [];
    var items = perSubject(alerts);
    var beyondFrame = Math.max(0, (Number(msg.total) || alerts.length) - alerts.length);
    // The newest subjects get a toast; older toasts make room.
    var limit = maxVisible();
    var shown = items.slice(Math.max(0, items.length - limit));
    var overflow = items.length - shown.length + beyondFrame;
    var place = region();
    shown.forEach(function (alert) {
      while (visible.length >= limit) visible[0].dismiss();
      var toast = alertToast(alert);
      visible.push(toast);
      if (summary && summary.node.parentNode === place) place.insertBefore(toast.node, summary.node);
      else place.appendChild(toast.node);
    });
    addToSummary(overflow);
  }

  Live.on('alerts.created', show);

  window.TargetGridAlerts = { show: show, maxVisible: maxVisible, TIMEOUT_MS: TIMEOUT_MS };
})(window, document);
