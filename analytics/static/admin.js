/* The admin page of visit-analytics. No build step, no dependencies.
 *
 * The admin token lives in the variable `token` below and nowhere else: no storage, no cookie.
 * Every text that comes from the service is set with textContent, never parsed as HTML. */
'use strict';

(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const METRICS = ['pageviews', 'visits', 'visitors'];
  const WINDOWS = ['today', 'this_week', 'this_month', 'total'];
  const WINDOW_NAMES = {
    today: 'today', this_week: 'this week', this_month: 'this month', total: 'total',
  };
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov',
    'Dec'];
  const DAY_MS = 86400000;

  let token = null; // the admin token, for this tab only
  let sites = []; // site objects of the admin API
  let counters = new Map(); // site id -> its counters document
  let selected = null; // the site shown under the table
  let days = 30; // the chart's range
  let lastReset = null; // {site, id, names}: the reset the Undo button puts back
  let chartTicket = 0; // answers to a superseded chart request are dropped
  let drawn = null; // {site, list}: what the chart shows, to draw it again at another width

  const $ = (id) => document.getElementById(id);
  const path = (text) => encodeURIComponent(text);
  const fmt = (n) => Number(n).toLocaleString('en-US');

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Calls the service; answers the JSON body, or throws an ApiError with its message. */
  async function api(method, url, {body, admin = true} = {}) {
    const headers = {Accept: 'application/json'};
    if (admin) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (err) {
      throw new ApiError(0, 'network', `The service did not answer (${err.message}).`);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const error = data && data.error ? data.error : {};
      const message = typeof error.message === 'string' ? error.message : response.statusText;
      throw new ApiError(response.status, error.code || 'http_error',
        `${message} (HTTP ${response.status})`);
    }
    return data;
  }

  function say(text, kind = 'info') {
    const status = $('status');
    status.textContent = text;
    status.className = `status ${kind}`;
  }

  function fail(err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut(`Not signed in: ${err.message}.`);
      return;
    }
    say(err instanceof ApiError ? err.message : `Unexpected error: ${err}`, 'error');
  }

  /** Runs an action with its buttons disabled, showing any error in the status line. */
  async function run(buttons, action) {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await action();
    } catch (err) {
      fail(err);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  function signOut(message) {
    token = null;
    sites = [];
    counters = new Map();
    lastReset = null;
    $('sites').tBodies[0].replaceChildren();
    $('chart').replaceChildren();
    drawn = null;
    $('app').hidden = true;
    $('sign-out').hidden = true;
    $('login').hidden = false;
    const input = $('token');
    input.focus();
    input.select();
    say(message, message.startsWith('Not signed in') ? 'error' : 'info');
  }

  // Dates are local calendar days of a site, as YYYY-MM-DD; the arithmetic is done in UTC.
  function parseDay(text) {
    const [y, m, d] = text.split('-').map(Number);
    return new Date(Date.UTC(y, m - 1, d));
  }

  function addDays(text, n) {
    return new Date(parseDay(text).getTime() + n * DAY_MS).toISOString().slice(0, 10);
  }

  function dayLabel(text, withYear) {
    const date = parseDay(text);
    const label = `${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]}`;
    return withYear ? `${label} ${date.getUTCFullYear()}` : label;
  }

  // --- Sites and their counters -------------------------------------------------------------

  async function loadSites() {
    const listed = await api('GET', '/api/v1/admin/sites');
    const docs = await Promise.all(listed.sites.map(
      (site) => api('GET', `/api/v1/sites/${path(site.id)}/counters`, {admin: false})));
    const previous = selected;
    sites = listed.sites;
    counters = new Map(sites.map((site, i) => [site.id, docs[i]]));
    if (!sites.some((site) => site.id === selected)) {
      selected = sites.length ? sites[0].id : null;
    }
    renderSites();
    renderSite(selected !== previous);
    if (selected) await loadChart();
  }

  function cell(tag, text, attributes = {}) {
    const element = document.createElement(tag);
    element.textContent = text;
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
    return element;
  }

  function renderSites() {
    const body = $('sites').tBodies[0];
    body.replaceChildren();
    if (!sites.length) {
      body.append(cell('tr', ''));
      body.rows[0].append(cell('td', 'No site is registered yet.', {colspan: '14'}));
      return;
    }
    for (const site of sites) {
      const doc = counters.get(site.id);
      const row = document.createElement('tr');
      row.dataset.site = site.id;
      row.classList.toggle('selected', site.id === selected);
      const head = cell('th', '', {scope: 'row', class: 'name'});
      const pick = cell('button', site.id, {
        type: 'button', class: 'site', 'aria-pressed': String(site.id === selected),
      });
      pick.addEventListener('click', () => select(site.id));
      head.append(pick);
      const about = [site.name, site.timezone].filter(Boolean).join(' · ');
      head.append(cell('span', about, {class: 'about'}));
      if (doc.stale) head.append(cell('span', 'stale', {class: 'stale'}));
      row.append(head, cell('td', fmt(doc.online), {'data-window': 'online'}));
      for (const name of WINDOWS) {
        METRICS.forEach((metric, i) => {
          row.append(cell('td', fmt(doc.windows[name][metric]), {
            'data-window': name,
            'data-metric': metric,
            class: i === 0 ? 'first' : '',
          }));
        });
      }
      body.append(row);
    }
  }

  function select(id) {
    if (id === selected) return;
    selected = id;
    renderSites();
    renderSite(true);
    run([], loadChart);
  }

  function renderSite(changed) {
    const section = $('site');
    section.hidden = !selected;
    if (!selected) return;
    const site = sites.find((s) => s.id === selected);
    const doc = counters.get(selected);
    $('site-title').textContent = site.name ? `${site.name} (${site.id})` : site.id;
    const asOf = doc.as_of.slice(11, 19);
    $('as-of').textContent = `Counts of ${site.id} as of ${doc.windows.today.start} ${asOf} `
      + `(${doc.timezone}). Each site's days and weeks are in its own timezone.`;
    const undo = lastReset && lastReset.site === selected;
    $('reset-done').hidden = !undo;
    if (undo) $('reset-id').textContent = lastReset.id;
    if (changed) {
      for (const metric of METRICS) $(`offset-${metric}`).value = site.offsets[metric];
    }
  }

  // --- The chart ----------------------------------------------------------------------------

  async function loadChart() {
    const site = selected;
    const to = counters.get(site).windows.today.start;
    const from = addDays(to, -(days - 1));
    const ticket = ++chartTicket;
    $('chart').setAttribute('aria-busy', 'true');
    const data = await api('GET', `/api/v1/sites/${path(site)}/history?from=${from}&to=${to}`,
      {admin: false});
    if (ticket !== chartTicket) return;
    $('chart').removeAttribute('aria-busy');
    drawChart(site, data.days);
  }

  /** The smallest of 1, 2 or 5 times a power of ten that is at least `raw`, and at least 1. */
  function niceStep(raw) {
    if (raw <= 1) return 1;
    const power = 10 ** Math.floor(Math.log10(raw));
    const found = [1, 2, 5, 10].find((f) => f * power >= raw);
    return found * power;
  }

  function svg(tag, attributes = {}, text = null) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
    if (text !== null) element.textContent = text;
    return element;
  }

  /** Draws at the width of its box, one unit a pixel, so that the labels keep their size. */
  function drawChart(site, list) {
    drawn = {site, list};
    const width = Math.max(300, Math.round($('chart').clientWidth) || 760);
    const height = 260;
    const margin = {top: 14, right: 18, bottom: 30, left: 58};
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;
    const n = list.length;
    let peak = 1;
    for (const day of list) for (const m of METRICS) peak = Math.max(peak, day[m]);
    const step = niceStep(peak / 4);
    const top = step * Math.ceil(peak / step);
    const round = (v) => Math.round(v * 10) / 10;
    const x = (i) => round(margin.left + (n === 1 ? plotW / 2 : (i * plotW) / (n - 1)));
    const y = (v) => round(margin.top + plotH - (v / top) * plotH);

    const first = list[0].date;
    const last = list[n - 1].date;
    const sum = (m) => list.reduce((total, day) => total + day[m], 0);
    const busiest = list.reduce((best, day) => (day.pageviews > best.pageviews ? day : best));
    const mostVisitors = Math.max(...list.map((day) => day.visitors));
    const summary = `${fmt(sum('pageviews'))} pageviews and ${fmt(sum('visits'))} visits `
      + `from ${dayLabel(first, true)} to ${dayLabel(last, true)}; busiest day `
      + `${dayLabel(busiest.date, true)} with ${fmt(busiest.pageviews)} pageviews; `
      + `at most ${fmt(mostVisitors)} visitors a day.`;
    const label = `Daily pageviews, visits and visitors of ${site} over the last ${n} days. `
      + summary;

    const chart = svg('svg', {
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': label,
      class: n > 120 ? 'chart-svg dense' : 'chart-svg',
      width,
      height,
      'data-from': first,
      'data-to': last,
      preserveAspectRatio: 'xMidYMid meet',
    });
    chart.append(svg('title', {}, label));

    for (let v = 0; v <= top; v += step) {
      chart.append(svg('line', {
        class: v === 0 ? 'axis baseline' : 'grid', x1: margin.left, x2: width - margin.right, y1: y(v),
        y2: y(v),
      }));
      chart.append(svg('text', {
        class: 'tick y', x: margin.left - 8, y: y(v), 'text-anchor': 'end',
        'dominant-baseline': 'middle',
      }, fmt(v)));
    }
    chart.append(svg('line', {
      class: 'axis', x1: margin.left, x2: margin.left, y1: margin.top, y2: margin.top + plotH,
    }));

    // About one date every 150 px: five on a desktop, three on a phone.
    const parts = Math.min(n - 1, Math.max(2, Math.floor(plotW / 150)));
    const labels = n === 1 ? [0] : Array.from({length: parts + 1},
      (_, k) => Math.round((k * (n - 1)) / parts));
    labels.forEach((i, k) => {
      const anchor = n === 1 ? 'middle' : k === 0 ? 'start' : k === labels.length - 1 ? 'end'
        : 'middle';
      chart.append(svg('line', {
        class: 'axis tick-mark', x1: x(i), x2: x(i), y1: margin.top + plotH, y2: margin.top + plotH + 4,
      }));
      chart.append(svg('text', {
        class: 'tick x', x: x(i), y: height - 8, 'text-anchor': anchor,
      }, dayLabel(list[i].date, n > 120)));
    });

    for (const metric of METRICS) {
      const points = list.map((day, i) => `${x(i)},${y(day[metric])}`).join(' ');
      chart.append(svg('polyline', {class: `line ${metric}`, points, fill: 'none',
        'data-metric': metric}));
    }

    $('chart').replaceChildren(chart);
    $('chart-summary').textContent = summary;
  }

  function redraw() {
    if (drawn && !$('app').hidden) drawChart(drawn.site, drawn.list);
  }

  // --- Events -------------------------------------------------------------------------------

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('token');
    const button = event.target.querySelector('button');
    token = input.value.trim();
    if (!token) return;
    say('Signing in…', 'busy');
    run([button], async () => {
      try {
        await loadSites();
      } catch (err) {
        token = null;
        throw err;
      }
      input.value = '';
      $('login').hidden = true;
      $('app').hidden = false;
      $('sign-out').hidden = false;
      redraw(); // drawn while hidden, at no width
      say(`Signed in: ${sites.length} site${sites.length === 1 ? '' : 's'}.`, 'ok');
    });
  });

  $('sign-out').addEventListener('click', () => signOut('Signed out: the token is forgotten.'));

  $('refresh').addEventListener('click', (event) => {
    run([event.target], async () => {
      await loadSites();
      say('Counts refreshed.', 'ok');
    });
  });

  for (const button of document.querySelectorAll('.range button')) {
    button.addEventListener('click', () => {
      days = Number(button.dataset.days);
      for (const other of document.querySelectorAll('.range button')) {
        other.setAttribute('aria-pressed', String(other === button));
      }
      run([], loadChart);
    });
  }

  $('reset-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const site = selected;
    const chosen = [...form.querySelectorAll('input[name="window"]:checked')].map((i) => i.value);
    if (!chosen.length) {
      say('Choose at least one window to reset.', 'error');
      return;
    }
    const names = chosen.map((w) => WINDOW_NAMES[w]).join(', ');
    const question = `Reset ${names} of ${site}?\n\nThe removed counts can be put back with `
      + 'Undo until the period ends (the total: within 30 days); hits counted meanwhile are kept.';
    if (!window.confirm(question)) {
      say('Reset cancelled.', 'info');
      return;
    }
    run([...form.querySelectorAll('button')], async () => {
      const result = await api('POST', `/api/v1/admin/sites/${path(site)}/reset`,
        {body: {windows: chosen}});
      lastReset = {site, id: result.reset_id, names};
      form.querySelectorAll('input[name="window"]').forEach((i) => { i.checked = false; });
      renderSite(false);
      say(`Reset ${result.reset_id}: ${names} of ${site} emptied.`, 'ok');
      await loadSites();
    });
  });

  $('undo').addEventListener('click', (event) => {
    const reset = lastReset;
    if (!reset) return;
    run([event.target], async () => {
      try {
        await api('POST', `/api/v1/admin/sites/${path(reset.site)}/resets/${path(reset.id)}/undo`);
      } catch (err) {
        if (err.status === 404 || err.status === 409) {
          lastReset = null;
          renderSite(false);
        }
        throw err;
      }
      lastReset = null;
      renderSite(false);
      say(`Reset ${reset.id} undone: ${reset.names} of ${reset.site} restored.`, 'ok');
      await loadSites();
    });
  });

  $('offsets-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const site = selected;
    const body = {};
    for (const metric of METRICS) {
      const input = $(`offset-${metric}`);
      const value = input.valueAsNumber;
      if (!Number.isSafeInteger(value) || value < 0) {
        say(`The ${metric} offset must be a whole number, 0 or more.`, 'error');
        input.focus();
        return;
      }
      body[metric] = value;
    }
    run([...event.target.querySelectorAll('button')], async () => {
      const saved = await api('PUT', `/api/v1/admin/sites/${path(site)}/offsets`, {body});
      const o = saved.offsets;
      await loadSites();
      renderSite(true);
      // Said last: the form shows the saved values by now.
      say(`Offsets of ${site} saved: ${fmt(o.pageviews)} pageviews, ${fmt(o.visits)} visits, `
        + `${fmt(o.visitors)} visitors.`, 'ok');
    });
  });

  let resizing = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(redraw);
  });

  $('token').focus();
})();
