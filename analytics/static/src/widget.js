/*! visit-analytics widget.js: counts the page view, draws the visit box. Source: analytics/static/src/widget.js */
// The embed script: <script async src="https://STATS-HOST/widget.js" data-site="ID"> counts the
// page view, draws the box and fills the page's number elements ([data-analytics-value], and
// busuanzi's ids); its options are data attributes of the tag or of a box element (README,
// Embedding).
//
// This is the source, not what is served: the build (analytics/widget_build.py) minifies it and
// writes the box's rows and labels in place of __BOX__, into analytics/static/widget.js.
(() => {
  // Whatever fails here, the host page goes on: nothing may reach its console or stop its scripts.
  try {
    // Without currentScript (older browsers, some script loaders) the tag is found by its
    // attributes.
    const script =
      document.currentScript || document.querySelector('script[data-site][src*="widget.js"]');
    const option = (element, name) => element.getAttribute('data-' + name);
    const site = option(script, 'site');
    // A single-page app's views: each one's referrer is the address of the view before it.
    let pageUrl = location.href;
    let referrer = document.referrer;
    let reading = 0;
    let sheet;
    const boxes = [];

    // One count per page and site, however often the tag is on the page.
    if (!site || window['_va' + site]) return;
    window['_va' + site] = 1;

    const ignore = () => 0;
    // Every entry point is wrapped: an error of ours must never surface in the host page.
    const guarded =
      (fn) =>
      (...args) => {
        try {
          return fn(...args);
        } catch (e) {}
      };
    // The service is wherever the script came from.
    const origin = new URL(script.src).origin;
    const hitUrl = origin + '/api/v1/hit';
    const counting = option(script, 'count') != 'false';
    // {rows, defaultRows, labels: {vi: {title, online, ...}, en: {...}}}: written in by the build
    // from the service's own (analytics/render.py), so that this box, the iframe box and the
    // badge say the same.
    const BOX = __BOX__;
    // The names a number element may ask for: online, a window's metric, this page's views
    // (page.pageviews); nothing of the objects' prototypes (constructor.length) passes.
    const NAME = /^(online|\w+\.(pageviews|visits|visitors))$/;
    // busuanzi's ids and the numbers they stand for, so that a page made for busuanzi works
    // as it is.
    const BUSUANZI = {
      site_pv: 'total.pageviews',
      site_uv: 'total.visitors',
      page_pv: 'page.pageviews',
    };
    const byId = (id) => document.getElementById(id);

    const colours = (background, text, line, headBackground, headText) =>
      `{--bg:${background};--fg:${text};--line:${line};--head-bg:${headBackground};--head-fg:${headText}}`;
    const DARK = colours('#1f2933', '#e4e7eb', '#3e4c59', '#0b2545', '#e4e7eb');
    // .b inherits nothing from its host element, which the page's rules reach; sizes are in em
    // so that the box follows the page's font size and the reader's zoom.
    const STYLE =
      ':host{display:block}' +
      '.b{all:initial;display:block;max-width:17.5em;border:1px solid var(--line);' +
      'border-radius:.4em;overflow:hidden;background:var(--bg);color:var(--fg);' +
      'font-family:system-ui,"Segoe UI",Roboto,sans-serif;line-height:1.4}' +
      '.b>*{font-size:.875em}' +
      '.h{padding:.5em .8em;font-weight:600;background:var(--head-bg);color:var(--head-fg)}' +
      'dl{margin:0;padding:.3em .8em .5em}' +
      '.r{display:flex;flex-wrap:wrap;justify-content:space-between;gap:0 1em;' +
      'padding:.25em 0;border-bottom:1px dashed var(--line)}' +
      '.r:last-child{border:0}' +
      'dd{margin:0 0 0 auto;font-weight:600;font-variant-numeric:tabular-nums}' +
      '.light,.auto' +
      colours('#fff', '#1f2933', '#d9e2ec', '#1d4e89', '#fff') +
      '.dark' +
      DARK +
      '@media(prefers-color-scheme:dark){.auto' +
      DARK +
      '}';

    // A beacon of a string is sent as text/plain, which needs no CORS preflight; without
    // sendBeacon (or with its queue full) fetch, and without fetch the GIF of an image.
    const send = guarded((type) => {
      const hit = {
        site,
        url: location.href.slice(0, 2048),
        referrer: referrer.slice(0, 2048),
        type,
      };
      const body = JSON.stringify(hit);
      (navigator.sendBeacon && navigator.sendBeacon(hitUrl, body)) ||
        (window.fetch
          ? fetch(hitUrl, { method: 'POST', body, keepalive: true, mode: 'no-cors' }).catch(ignore)
          : (new Image().src = hitUrl + '.gif?' + new URLSearchParams(hit)));
    });

    // 1532907 as the language writes it: 1.532.907, or 1,532,907 in English.
    const grouped = (count, lang) =>
      ('' + count).replace(/\B(?=(\d{3})+(?!\d))/g, lang == 'en' ? ',' : '.');

    // Every number of the page from what was read: the counters, and this page's counts when
    // the page shows them. What failed to read keeps what it shows: dashes in the box, and the
    // page's own text elsewhere.
    const show = (counters, page) => {
      // {online, today: {pageviews, visits, visitors}, ..., page: {pageviews}}; a failed read
      // is 0, which has no numbers.
      const numbers = counters ? Object.assign({ online: counters.online }, counters.windows) : {};
      numbers.page = page && page.windows.total;
      // The element's text, if `name` is a number that was read; true then.
      const fill = (element, name, lang) => {
        const count =
          NAME.test(name) && name.split('.').reduce((found, key) => (found || {})[key], numbers);
        if (typeof count != 'number') return;
        element && (element.textContent = grouped(count, lang));
        return 1;
      };
      boxes.forEach((box) => {
        // A metric the service does not count falls back to the site's own.
        const metric =
          counters && (box.metric in counters.windows.total ? box.metric : counters.box_metric);
        box.rows.forEach((row, i) =>
          fill(
            box.cells[i],
            row == 'online' ? row : row + '.' + (row == 'page' ? 'pageviews' : metric),
            box.lang,
          ),
        );
      });
      document
        .querySelectorAll('[data-analytics-value]')
        .forEach((element) =>
          fill(
            element,
            option(element, 'analytics-value'),
            option(element, 'lang') || option(script, 'lang'),
          ),
        );
      // busuanzi's containers come hidden; its script shows them so once the numbers are in.
      for (const id in BUSUANZI) {
        const container = byId('busuanzi_container_' + id);
        fill(byId('busuanzi_value_' + id), BUSUANZI[id], option(script, 'lang')) &&
          container &&
          (container.style.display = 'inline');
      }
    };

    // One read at a time, and only of what the page shows: the counters, and this page's
    // counts where a box row, a number element or busuanzi's page_pv asks for them.
    const load = guarded(() => {
      if (
        reading ||
        !(boxes.length || document.querySelector('[data-analytics-value],[id^=busuanzi_]'))
      )
        return;
      reading = 1;
      const timeout = new AbortController();
      setTimeout(() => timeout.abort(), 1e4);
      const read = (path) =>
        fetch(origin + '/api/v1/sites/' + site + path, { signal: timeout.signal })
          .then((response) => response.ok && response.json())
          .catch(ignore);
      Promise.all([
        read('/counters'),
        (boxes.some((box) => box.rows.includes('page')) ||
          document.querySelector('[data-analytics-value="page.pageviews"],[id$=_page_pv]')) &&
          read('/page?path=' + encodeURIComponent(location.pathname)),
      ])
        .then((found) => show(...found))
        .catch(ignore)
        .then(() => (reading = 0));
    });

    const add = (parent, tag, className, text) => {
      const element = parent.appendChild(document.createElement(tag));
      element.className = className;
      text && (element.textContent = text);
      return element;
    };

    // A box in its own shadow root, which the page's styles cannot reach.
    const draw = guarded((host) => {
      const setting = (name) => option(host, name) || option(script, name);
      const lang = setting('lang') == 'en' ? 'en' : 'vi';
      const labels = BOX.labels[lang];
      const theme = /^(dark|auto)$/.test(setting('theme')) ? setting('theme') : 'light';
      let rows = (setting('rows') || '')
        .split(',')
        .map((row) => row.trim())
        .filter((row) => BOX.rows.includes(row));
      const root = host.attachShadow({ mode: 'open' });
      if (!rows.length) rows = BOX.defaultRows;
      // An adopted sheet passes a Content-Security-Policy of style-src 'none', a <style> does
      // not: the <style> is for browsers without constructed sheets.
      sheet && 'adoptedStyleSheets' in root
        ? (root.adoptedStyleSheets = [sheet])
        : add(root, 'style', '', STYLE);
      const box = add(root, 'div', 'b ' + theme);
      box.setAttribute('role', 'region');
      box.setAttribute('aria-label', labels.title);
      box.lang = lang;
      add(box, 'div', 'h', labels.title);
      const list = add(box, 'dl', '');
      // Every row from the start, with a dash until the first read: the box never changes height.
      boxes.push({
        lang,
        metric: setting('metric'),
        rows,
        cells: rows.map((row) => {
          const line = add(list, 'div', 'r');
          add(line, 'dt', '', labels[row]);
          return add(line, 'dd', '', '–');
        }),
      });
    });

    const start = guarded(() => {
      // One sheet for every box; 0 where the browser cannot construct one.
      try {
        sheet = new CSSStyleSheet();
        sheet.replaceSync(STYLE);
      } catch (e) {
        sheet = 0;
      }
      const hosts = document.querySelectorAll('[data-analytics-box]');
      const boxed = option(script, 'box');
      // data-box="false": no box at all, the page's number elements only.
      if (boxed != 'false') {
        if (hosts.length) hosts.forEach(draw);
        // No box element on the page: the box goes right after the script tag (a page made
        // for busuanzi, which shows the numbers in its own elements, says data-box="false").
        else {
          const host = document.createElement('div');
          script.after(host);
          draw(host);
        }
      }
      load();
    });

    // Heartbeats keep a reader online while the page is in view, and the box fresh.
    const tick = guarded(() => {
      if (document.visibilityState == 'visible') {
        counting && send('heartbeat');
        load();
      }
    });

    const navigated = guarded(() => {
      if (location.href != pageUrl) {
        referrer = pageUrl;
        pageUrl = location.href;
        send('pageview');
        // This page's numbers, once the read cache has the view.
        setTimeout(load, 2500);
      }
    });
    const pushState = history.pushState;

    if (counting) {
      send('pageview');
      // Again once the service's read cache (2 s) has this view.
      setTimeout(load, 2500);
      if (option(script, 'spa') == 'true') {
        // A function, not an arrow: pushState needs the history it is called on.
        history.pushState = function () {
          const result = pushState.apply(this, arguments);
          navigated();
          return result;
        };
        window.addEventListener('popstate', navigated);
      }
    }
    document.readyState == 'loading'
      ? document.addEventListener('DOMContentLoaded', start)
      : start();
    setInterval(tick, Math.max(1, +option(script, 'heartbeat') || 60) * 1e3);
    document.addEventListener('visibilitychange', tick);
  } catch (e) {}
})();
