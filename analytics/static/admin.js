/* The admin page of visit-analytics. No build step, no dependencies.
 *
 * The admin token lives in the variable `token` below and nowhere else: no storage, no cookie.
 * The one thing stored is the language chosen, under LANG_KEY in the browser's local storage.
 * Every text that comes from the service is set with textContent, never parsed as HTML. */
'use strict';

(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const METRICS = ['pageviews', 'visits', 'visitors'];
  const WINDOWS = ['today', 'this_week', 'this_month', 'total'];
  const DAY_MS = 86400000;
  const MAX_HISTORY_DAYS = 366; // the most one history request may span
  const HOME_ZONE = 'Asia/Ho_Chi_Minh';
  const LANG_KEY = 'analytics-admin-lang';
  const LOCALES = {vi: 'vi-VN', en: 'en-GB'};
  const SITE_FIELDS = ['name', 'timezone', 'week_start', 'box_metric', 'online_window_seconds',
    'session_timeout_seconds', 'origins'];
  const NUMBER_FIELDS = ['online_window_seconds', 'session_timeout_seconds'];
  const NEW_SITE = {
    name: '', timezone: HOME_ZONE, week_start: 'monday', box_metric: 'visits',
    online_window_seconds: 300, session_timeout_seconds: 1800, origins: [],
  };

  // The page's own strings. The names of windows and metrics, and the number format, are the
  // box's: they come from /admin/labels.json (see `label` and `fmt`).
  const STRINGS = {
    vi: {
      title: 'Quản trị · visit-analytics',
      admin: 'quản trị',
      language: 'Ngôn ngữ',
      signIn: 'Đăng nhập',
      signInButton: 'Đăng nhập',
      signOut: 'Đăng xuất',
      token: 'Mã quản trị (admin token)',
      tokenHint: 'Mã chỉ nằm trong bộ nhớ của thẻ này: tải lại hoặc đóng trang là quên.',
      sites: 'Các trang web',
      addSite: 'Thêm trang',
      refresh: 'Làm mới',
      site: 'Trang',
      views: 'Lượt xem',
      visits: 'Truy cập',
      visitors: 'Người xem',
      pageviewsName: 'Lượt xem',
      visitsName: 'Lượt truy cập',
      visitorsName: 'Người xem',
      noSites: 'Chưa có trang nào được đăng ký.',
      stale: 'cũ',
      asOf: 'Số liệu của {site} lúc {date} {time} ({zone}). Ngày và tuần của mỗi trang tính theo '
        + 'múi giờ của trang đó.',
      addTitle: 'Thêm trang web',
      create: 'Tạo trang',
      cancel: 'Huỷ',
      save: 'Lưu cài đặt',
      settings: 'Cài đặt, đặt lại và xoá',
      f_id: 'Mã trang (id)',
      f_id_hint: 'Chữ thường, số và dấu gạch ngang; không đổi được về sau.',
      f_name: 'Tên',
      f_timezone: 'Múi giờ',
      f_week_start: 'Tuần bắt đầu',
      monday: 'Thứ hai',
      sunday: 'Chủ nhật',
      f_box_metric: 'Số hiện trong hộp',
      f_online_window: 'Cửa sổ online (giây)',
      f_session_timeout: 'Hết phiên sau (giây)',
      f_origins: 'Nguồn được phép (origins)',
      f_origins_hint: 'Mỗi dòng một origin: giao thức, tên máy và cổng nếu có, không có đường dẫn. '
        + 'Để trống: nhận lượt xem từ mọi nơi.',
      chartRange: 'Khoảng của biểu đồ',
      days30: '30 ngày',
      days90: '90 ngày',
      days365: '365 ngày',
      from: 'Từ ngày',
      to: 'Đến ngày',
      downloadCsv: 'Tải CSV',
      csvHint: 'Các cột date,pageviews,visits,visitors như lệnh analytics history --format csv: '
        + 'tệp nhập lại được bằng analytics import.',
      traffic: 'Trang xem nhiều và nguồn truy cập',
      window: 'Khoảng',
      topPages: 'Trang xem nhiều nhất',
      topReferrers: 'Nguồn truy cập',
      page: 'Trang',
      referrer: 'Nguồn',
      noPages: 'Chưa có lượt xem nào trong khoảng này.',
      noReferrers: 'Chưa có nguồn nào trong khoảng này.',
      embed: 'Mã nhúng',
      embedHint: 'Dán vào trang web, chỗ muốn hiện số liệu.',
      snippetScript: 'Hộp thống kê (thẻ script)',
      snippetValues: 'Từng con số trong trang (data-analytics-value)',
      snippetIframe: 'Hộp trong iframe (không cần JavaScript)',
      snippetBadge: 'Huy hiệu SVG',
      valuesExample: 'Hôm nay: {today} lượt truy cập · Bài này: {page} lượt xem',
      copy: 'Chép',
      copied: 'Đã chép mã nhúng "{name}".',
      copyFailed: 'Không chép được: hãy chọn mã và chép bằng tay.',
      resetTitle: 'Đặt lại số liệu',
      resetHint: 'Số đã xoá lấy lại được bằng Hoàn tác cho đến hết khoảng (một ngày: đến nửa đêm; '
        + 'tổng: trong 30 ngày). Số khởi điểm không bao giờ bị đặt lại.',
      resetButton: 'Đặt lại…',
      resetLabel: 'Đã đặt lại',
      resetDone: '.',
      undo: 'Hoàn tác',
      offsetsTitle: 'Số khởi điểm',
      offsetsHint: 'Số cộng thêm vào tổng, ví dụ số của bộ đếm cũ. Lưu là thay cả ba.',
      saveOffsets: 'Lưu số khởi điểm',
      deleteTitle: 'Xoá trang',
      deleteHint: 'Xoá {site} cùng mọi số liệu của nó, không hoàn tác được. Gõ mã trang để xác nhận.',
      deleteConfirm: 'Mã trang',
      deleteButton: 'Xoá trang',
      audit: 'Nhật ký quản trị',
      time: 'Thời gian',
      action: 'Thao tác',
      who: 'Người làm',
      change: 'Thay đổi',
      noAudit: 'Chưa có thao tác nào.',
      // Status lines
      noScript: 'Trang này cần JavaScript.',
      network: 'Dịch vụ không trả lời ({message}).',
      unexpected: 'Lỗi không mong đợi: {error}',
      signingIn: 'Đang đăng nhập…',
      signedIn: 'Đã đăng nhập: {count} trang.',
      notSignedIn: 'Chưa đăng nhập: {message}.',
      signedOut: 'Đã đăng xuất: mã đã bị quên.',
      refreshed: 'Đã làm mới số liệu.',
      chooseWindow: 'Hãy chọn ít nhất một khoảng để đặt lại.',
      resetQuestion: 'Đặt lại {names} của {site}?\n\nSố đã xoá lấy lại được bằng Hoàn tác cho đến '
        + 'hết khoảng (tổng: trong 30 ngày); lượt xem đếm trong lúc đó vẫn giữ.',
      resetCancelled: 'Đã huỷ đặt lại.',
      resetOk: 'Đặt lại {id}: đã xoá {names} của {site}.',
      undone: 'Đã hoàn tác {id}: {names} của {site} đã được khôi phục.',
      offsetInvalid: 'Số khởi điểm {metric} phải là số nguyên, từ 0 trở lên.',
      offsetsSaved: 'Đã lưu số khởi điểm của {site}: {pageviews} lượt xem, {visits} lượt truy cập, '
        + '{visitors} người xem.',
      created: 'Đã tạo trang {site}.',
      saved: 'Đã lưu cài đặt của {site}.',
      nothingToSave: 'Không có gì thay đổi.',
      notSaved: 'Chưa lưu: xem lỗi bên cạnh ô được đánh dấu.',
      deleted: 'Đã xoá trang {site}.',
      deleteMismatch: 'Gõ đúng mã trang {site} để xoá.',
      csvDone: 'Đã tải {count} ngày của {site} ({from} đến {to}).',
      csvRange: 'Ngày bắt đầu và ngày kết thúc phải đúng dạng, ngày kết thúc không trước ngày '
        + 'bắt đầu.',
      // The chart
      chartLabel: 'Lượt xem, lượt truy cập và người xem mỗi ngày của {site} trong {n} ngày qua. ',
      summary: '{pageviews} lượt xem và {visits} lượt truy cập từ {first} đến {last}; ngày đông '
        + 'nhất {busiest} với {busiestViews} lượt xem; nhiều nhất {visitors} người xem một ngày.',
      // Audit actions
      a_site_created: 'Thêm trang',
      a_site_updated: 'Sửa cài đặt',
      a_site_deleted: 'Xoá trang',
      a_offsets_set: 'Đặt số khởi điểm',
      a_reset: 'Đặt lại',
      a_reset_undone: 'Hoàn tác đặt lại',
      a_history_imported: 'Nhập lịch sử',
      a_auth_failed: 'Đăng nhập sai',
      keysRemoved: 'khoá đã xoá',
    },
    en: {
      title: 'Admin · visit-analytics',
      admin: 'admin',
      language: 'Language',
      signIn: 'Sign in',
      signInButton: 'Sign in',
      signOut: 'Sign out',
      token: 'Admin token',
      tokenHint: "The token stays in this tab's memory only: reloading or closing the page "
        + 'forgets it.',
      sites: 'Sites',
      addSite: 'Add a site',
      refresh: 'Refresh',
      site: 'Site',
      views: 'Views',
      visits: 'Visits',
      visitors: 'Visitors',
      pageviewsName: 'Pageviews',
      visitsName: 'Visits',
      visitorsName: 'Visitors',
      noSites: 'No site is registered yet.',
      stale: 'stale',
      asOf: "Counts of {site} as of {date} {time} ({zone}). Each site's days and weeks are in its "
        + 'own timezone.',
      addTitle: 'Add a site',
      create: 'Create the site',
      cancel: 'Cancel',
      save: 'Save the settings',
      settings: 'Settings, resets and deletion',
      f_id: 'Site id',
      f_id_hint: 'Lower-case letters, digits and dashes; it cannot be changed later.',
      f_name: 'Name',
      f_timezone: 'Timezone',
      f_week_start: 'Week starts on',
      monday: 'Monday',
      sunday: 'Sunday',
      f_box_metric: 'Number the box shows',
      f_online_window: 'Online window (seconds)',
      f_session_timeout: 'Session timeout (seconds)',
      f_origins: 'Allowed origins',
      f_origins_hint: 'One origin a line: scheme, host and port if any, no path. Empty: hits are '
        + 'taken from anywhere.',
      chartRange: 'Chart range',
      days30: '30 days',
      days90: '90 days',
      days365: '365 days',
      from: 'From',
      to: 'To',
      downloadCsv: 'Download CSV',
      csvHint: 'The columns date,pageviews,visits,visitors of analytics history --format csv: '
        + 'the file imports back with analytics import.',
      traffic: 'Top pages and referrers',
      window: 'Window',
      topPages: 'Top pages',
      topReferrers: 'Referrers',
      page: 'Page',
      referrer: 'Referrer',
      noPages: 'No pageviews in this window yet.',
      noReferrers: 'No referrers in this window yet.',
      embed: 'Embed snippet',
      embedHint: 'Paste it into the site where the numbers should show.',
      snippetScript: 'The box (script tag)',
      snippetValues: 'Single numbers in the page (data-analytics-value)',
      snippetIframe: 'The box in an iframe (no JavaScript needed)',
      snippetBadge: 'SVG badge',
      valuesExample: 'Today: {today} visits · This article: {page} views',
      copy: 'Copy',
      copied: 'Copied the snippet "{name}".',
      copyFailed: 'Could not copy: select the snippet and copy it by hand.',
      resetTitle: 'Reset counters',
      resetHint: 'The removed counts can be put back with Undo until the period ends (a day at '
        + 'midnight; the total: within 30 days). Offsets are never reset.',
      resetButton: 'Reset…',
      resetLabel: 'Reset',
      resetDone: 'done.',
      undo: 'Undo',
      offsetsTitle: 'Offsets',
      offsetsHint: 'Initial values added to the total, e.g. the counts of a previous counter. '
        + 'Saving replaces all three.',
      saveOffsets: 'Save offsets',
      deleteTitle: 'Delete the site',
      deleteHint: 'Deletes {site} and every count of it, for good. Type the site id to confirm.',
      deleteConfirm: 'Site id',
      deleteButton: 'Delete the site',
      audit: 'Audit log',
      time: 'Time',
      action: 'Action',
      who: 'By',
      change: 'Change',
      noAudit: 'No admin action yet.',
      noScript: 'This page needs JavaScript.',
      network: 'The service did not answer ({message}).',
      unexpected: 'Unexpected error: {error}',
      signingIn: 'Signing in…',
      signedIn: 'Signed in: {count} site{s}.',
      notSignedIn: 'Not signed in: {message}.',
      signedOut: 'Signed out: the token is forgotten.',
      refreshed: 'Counts refreshed.',
      chooseWindow: 'Choose at least one window to reset.',
      resetQuestion: 'Reset {names} of {site}?\n\nThe removed counts can be put back with Undo '
        + 'until the period ends (the total: within 30 days); hits counted meanwhile are kept.',
      resetCancelled: 'Reset cancelled.',
      resetOk: 'Reset {id}: {names} of {site} emptied.',
      undone: 'Reset {id} undone: {names} of {site} restored.',
      offsetInvalid: 'The {metric} offset must be a whole number, 0 or more.',
      offsetsSaved: 'Offsets of {site} saved: {pageviews} pageviews, {visits} visits, '
        + '{visitors} visitors.',
      created: 'Site {site} created.',
      saved: 'Settings of {site} saved.',
      nothingToSave: 'Nothing was changed.',
      notSaved: 'Not saved: see the message next to the marked field.',
      deleted: 'Site {site} deleted.',
      deleteMismatch: 'Type the site id {site} to delete it.',
      csvDone: 'Downloaded {count} days of {site} ({from} to {to}).',
      csvRange: 'Both dates are needed, and the last one not before the first.',
      chartLabel: 'Daily pageviews, visits and visitors of {site} over the last {n} days. ',
      summary: '{pageviews} pageviews and {visits} visits from {first} to {last}; busiest day '
        + '{busiest} with {busiestViews} pageviews; at most {visitors} visitors a day.',
      a_site_created: 'Site added',
      a_site_updated: 'Settings changed',
      a_site_deleted: 'Site deleted',
      a_offsets_set: 'Offsets set',
      a_reset: 'Reset',
      a_reset_undone: 'Reset undone',
      a_history_imported: 'History imported',
      a_auth_failed: 'Failed sign-in',
      keysRemoved: 'keys removed',
    },
  };

  let lang = storedLang();
  let box = null; // /admin/labels.json: the box's labels and number format in each language
  let token = null; // the admin token, for this tab only
  let sites = []; // site objects of the admin API
  let counters = new Map(); // site id -> its counters document
  let selected = null; // the site shown under the table
  let days = 30; // the chart's range
  let lastReset = null; // {site, id, windows}: the reset the Undo button puts back
  let chartTicket = 0; // answers to a superseded request are dropped
  let trafficTicket = 0;
  let drawn = null; // {site, list}: what the chart shows, to draw it again at another width
  let trafficShown = null; // {pages, referrers} of the chosen site and window
  let auditShown = []; // the audit entries shown

  const $ = (id) => document.getElementById(id);
  const path = (text) => encodeURIComponent(text);

  function storedLang() {
    try {
      const chosen = window.localStorage.getItem(LANG_KEY);
      return chosen === 'en' ? 'en' : 'vi';
    } catch (err) {
      return 'vi';
    }
  }

  /** The page's string `key` in the chosen language, with {name} replaced from `vars`. */
  function t(key, vars = {}) {
    const text = STRINGS[lang][key];
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  }

  /** The box's label of a window, metric or `online`, `title`. */
  function label(key) {
    return box[lang].labels[key];
  }

  /** A count as the box writes it: 1.532.907 in Vietnamese, 1,532,907 in English. */
  function fmt(n) {
    return String(Math.trunc(Number(n))).replace(/\B(?=(\d{3})+(?!\d))/g, box[lang].group);
  }

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
      throw new ApiError(0, 'network', t('network', {message: err.message}));
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

  const labelsReady = api('GET', '/admin/labels.json', {admin: false}).then((data) => {
    box = data;
  });

  function say(text, kind = 'info') {
    const status = $('status');
    status.textContent = text;
    status.className = `status ${kind}`;
  }

  function fail(err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut(t('notSignedIn', {message: err.message}), 'error');
      return;
    }
    say(err instanceof ApiError ? err.message : t('unexpected', {error: err}), 'error');
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

  function signOut(message, kind = 'info') {
    token = null;
    sites = [];
    counters = new Map();
    lastReset = null;
    selected = null;
    $('sites').tBodies[0].replaceChildren();
    $('audit-log').tBodies[0].replaceChildren();
    $('chart').replaceChildren();
    drawn = null;
    trafficShown = null;
    auditShown = [];
    $('app').hidden = true;
    $('sign-out').hidden = true;
    $('login').hidden = false;
    const input = $('token');
    input.focus();
    input.select();
    say(message, kind);
  }

  // --- Language -----------------------------------------------------------------------------

  /** Writes every string of the page in the chosen language, then what the data shows. */
  function translate() {
    document.documentElement.lang = lang;
    document.title = t('title');
    $('lang').value = lang;
    for (const element of document.querySelectorAll('[data-t]')) {
      element.textContent = t(element.dataset.t);
    }
    for (const element of document.querySelectorAll('[data-t-label]')) {
      element.setAttribute('aria-label', t(element.dataset.tLabel));
    }
    if (!box) return;
    for (const element of document.querySelectorAll('[data-l]')) {
      element.textContent = label(element.dataset.l);
    }
    if (token && sites.length) {
      renderSites();
      renderSite(false);
      if (drawn) drawChart(drawn.site, drawn.list);
      if (trafficShown) renderTraffic(trafficShown);
    }
    if (token) renderAudit();
  }

  function setLang(chosen) {
    lang = chosen === 'en' ? 'en' : 'vi';
    try {
      window.localStorage.setItem(LANG_KEY, lang);
    } catch (err) {
      // Storage refused (a private window): the choice lasts until the page is left.
    }
    translate();
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
    const options = {day: 'numeric', month: 'short', timeZone: 'UTC'};
    if (withYear) options.year = 'numeric';
    return new Intl.DateTimeFormat(LOCALES[lang], options).format(parseDay(text));
  }

  function localTime(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return iso;
    return new Intl.DateTimeFormat(LOCALES[lang], {
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
    }).format(when);
  }

  function element(tag, text, attributes = {}) {
    const made = document.createElement(tag);
    if (text !== null) made.textContent = text;
    for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
    return made;
  }
  const cell = element;

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
    if (selected) await Promise.all([loadChart(), loadTraffic()]);
  }

  function renderSites() {
    const body = $('sites').tBodies[0];
    body.replaceChildren();
    if (!sites.length) {
      body.append(cell('tr', ''));
      body.rows[0].append(cell('td', t('noSites'), {colspan: '14', class: 'empty'}));
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
      if (doc.stale) head.append(cell('span', t('stale'), {class: 'stale'}));
      row.append(head, cell('td', fmt(doc.online), {
        'data-window': 'online', 'data-label': label('online'),
      }));
      for (const name of WINDOWS) {
        METRICS.forEach((metric, i) => {
          row.append(cell('td', fmt(doc.windows[name][metric]), {
            'data-window': name,
            'data-metric': metric,
            'data-label': `${label(name)} · ${label(metric)}`,
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
    run([], () => Promise.all([loadChart(), loadTraffic()]));
  }

  function renderSite(changed) {
    for (const id of ['site', 'traffic', 'embed', 'settings']) $(id).hidden = !selected;
    if (!selected) {
      $('as-of').textContent = '';
      return;
    }
    const site = sites.find((s) => s.id === selected);
    const doc = counters.get(selected);
    $('site-title').textContent = site.name ? `${site.name} (${site.id})` : site.id;
    $('as-of').textContent = t('asOf', {
      site: site.id, date: doc.windows.today.start, time: doc.as_of.slice(11, 19),
      zone: doc.timezone,
    });
    const undo = lastReset && lastReset.site === selected;
    $('reset-done').hidden = !undo;
    if (undo) $('reset-id').textContent = lastReset.id;
    $('delete-hint').textContent = t('deleteHint', {site: site.id});
    renderSnippets(site);
    if (changed) {
      for (const metric of METRICS) $(`offset-${metric}`).value = site.offsets[metric];
      fillSiteForm($('edit-form'), site);
      clearErrors($('delete-form'));
      $('delete-confirm').value = '';
      const today = doc.windows.today.start;
      const csv = $('csv-form');
      csv.elements.from.value = addDays(today, -29);
      csv.elements.to.value = today;
      csv.elements.from.max = today;
      csv.elements.to.max = today;
      clearErrors(csv);
    }
  }

  // --- The site forms -----------------------------------------------------------------------

  function timezoneNames() {
    const known = typeof Intl.supportedValuesOf === 'function'
      ? Intl.supportedValuesOf('timeZone') : [];
    return [HOME_ZONE, ...known.filter((zone) => zone !== HOME_ZONE)];
  }

  function buildSiteForm(form) {
    const fields = form.querySelector('.fields');
    fields.append($('site-fields').content.cloneNode(true));
    const zones = form.elements.timezone;
    for (const zone of timezoneNames()) zones.append(element('option', zone, {value: zone}));
    for (const field of fields.querySelectorAll('.field')) {
      const error = element('p', '', {class: 'field-error', id: `${form.id}-${field.dataset.field}-error`});
      error.hidden = true;
      field.append(error);
    }
  }

  function fillSiteForm(form, site) {
    clearErrors(form);
    const fields = form.elements;
    const zones = fields.timezone;
    if (![...zones.options].some((option) => option.value === site.timezone)) {
      zones.append(element('option', site.timezone, {value: site.timezone}));
    }
    for (const name of SITE_FIELDS) {
      fields[name].value = name === 'origins' ? site.origins.join('\n') : site[name];
    }
  }

  /** The form's fields as the admin API takes them. A number field that does not read as a
   * whole number is sent as it was typed, so that the service names the field in its answer. */
  function siteFields(form) {
    const fields = form.elements;
    const out = {};
    for (const name of SITE_FIELDS) {
      const raw = fields[name].value;
      if (name === 'origins') {
        out.origins = raw.split(/\s+/).filter(Boolean);
      } else if (NUMBER_FIELDS.includes(name)) {
        out[name] = /^\d{1,9}$/.test(raw.trim()) ? Number(raw.trim()) : raw;
      } else {
        out[name] = name === 'name' ? raw.trim() : raw;
      }
    }
    return out;
  }

  function clearErrors(form) {
    for (const error of form.querySelectorAll('.field-error')) {
      error.hidden = true;
      error.textContent = '';
    }
    for (const invalid of form.querySelectorAll('[aria-invalid]')) {
      invalid.removeAttribute('aria-invalid');
      invalid.removeAttribute('aria-describedby');
    }
  }

  /** The field of `form` an API error names: the first quoted name in its message that is a
   * field of the form, or `fallback`. */
  function fieldNamed(form, err, fallback = null) {
    for (const match of err.message.matchAll(/'([a-z_]+)[a-z_.]*'/g)) {
      if (form.querySelector(`.field[data-field="${match[1]}"]`)) return match[1];
    }
    return fallback;
  }

  /** Shows `err` next to the field it names, when it names one; answers whether it did. */
  function showFieldError(form, err, fallback = null) {
    if (!(err instanceof ApiError) || err.status !== 400 && err.status !== 409) return false;
    // A 409 (the id is taken) names no field: it is the fallback's.
    const name = err.status === 409 ? fallback : fieldNamed(form, err, fallback);
    const field = name && form.querySelector(`.field[data-field="${name}"]`);
    if (!field) return false;
    const error = field.querySelector('.field-error');
    if (!error) return false;
    error.textContent = err.message;
    error.hidden = false;
    const input = field.querySelector('input, select, textarea');
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', error.id);
    input.focus();
    say(t('notSaved'), 'error');
    return true;
  }

  /** Runs a form's action; an API error naming one of its fields is shown next to it. */
  function submitting(form, action, fallback = null) {
    clearErrors(form);
    return run([...form.querySelectorAll('button')], async () => {
      try {
        await action();
      } catch (err) {
        if (!showFieldError(form, err, fallback)) throw err;
      }
    });
  }

  // --- The embed snippets -------------------------------------------------------------------

  function attr(text) {
    return String(text).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')
      .replace(/>/g, '&gt;');
  }

  /** The HTML a site pastes, naming this service as the browser reached it. */
  function snippets(site) {
    const origin = window.location.origin;
    const id = attr(site.id);
    const script = `<script async src="${origin}/widget.js" data-site="${id}"></script>`;
    const values = t('valuesExample', {
      today: '<span data-analytics-value="today.visits"></span>',
      page: '<span data-analytics-value="page.pageviews"></span>',
    });
    const quiet = `<script async src="${origin}/widget.js" data-site="${id}" `
      + 'data-box="false"></script>';
    return {
      script,
      values: `<p>${values}</p>\n${quiet}`,
      iframe: `<iframe src="${origin}/widget/${path(site.id)}?lang=${lang}" `
        + `title="${attr(label('title'))}" width="240" height="190" loading="lazy"></iframe>`,
      badge: `<img src="${origin}/badge/${path(site.id)}.svg" alt="${attr(label('title'))}">`,
    };
  }

  function renderSnippets(site) {
    const made = snippets(site);
    for (const figure of document.querySelectorAll('.snippet')) {
      figure.querySelector('code').textContent = made[figure.dataset.snippet];
    }
  }

  async function copy(figure) {
    const text = figure.querySelector('code').textContent;
    const name = figure.querySelector('figcaption').textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {
      // No clipboard (a page not on HTTPS): select the text, for the user to copy.
      const range = document.createRange();
      range.selectNodeContents(figure.querySelector('code'));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      say(t('copyFailed'), 'error');
      return;
    }
    say(t('copied', {name}), 'ok');
  }

  // --- Pages and referrers ------------------------------------------------------------------

  async function loadTraffic() {
    const site = selected;
    const chosen = $('traffic-window').value;
    const ticket = ++trafficTicket;
    const query = `window=${path(chosen)}&limit=10`;
    const base = `/api/v1/sites/${path(site)}`;
    $('traffic').setAttribute('aria-busy', 'true');
    let found;
    try {
      const [pages, referrers] = await Promise.all([
        api('GET', `${base}/pages?${query}`, {admin: false}),
        api('GET', `${base}/referrers?${query}`, {admin: false}),
      ]);
      found = {site, window: chosen, pages: pages.pages, referrers: referrers.referrers,
        error: null};
    } catch (err) {
      found = {site, window: chosen, pages: [], referrers: [], error: err.message};
    }
    if (ticket !== trafficTicket) return;
    $('traffic').removeAttribute('aria-busy');
    renderTraffic(found);
  }

  function renderTraffic(found) {
    trafficShown = found;
    const problem = $('traffic-error');
    problem.hidden = !found.error;
    problem.textContent = found.error || '';
    const fill = (table, list, key, empty) => {
      const body = table.tBodies[0];
      body.replaceChildren();
      for (const entry of list) {
        const row = element('tr', null);
        row.append(element('td', entry[key], {class: 'what'}),
          element('td', fmt(entry.pageviews), {class: 'count'}));
        body.append(row);
      }
      if (!list.length && !found.error) {
        const row = element('tr', null);
        row.append(element('td', t(empty), {colspan: '2', class: 'empty'}));
        body.append(row);
      }
      table.dataset.window = found.window;
      table.dataset.site = found.site;
    };
    fill($('pages'), found.pages, 'path', 'noPages');
    fill($('referrers'), found.referrers, 'host', 'noReferrers');
  }

  // --- The audit log ------------------------------------------------------------------------

  async function loadAudit() {
    const data = await api('GET', '/api/v1/admin/audit?limit=50');
    auditShown = data.entries;
    renderAudit();
  }

  function shown(value) {
    if (value === null || value === undefined || value === '') return '—';
    if (Array.isArray(value)) return value.length ? value.map(shown).join(', ') : '—';
    if (typeof value === 'number') return fmt(value);
    if (typeof value === 'object') {
      return Object.entries(value).map(([k, v]) => `${k} ${shown(v)}`).join(', ');
    }
    return String(value);
  }

  const isChange = (value) => value !== null && typeof value === 'object' && 'from' in value
    && 'to' in value;

  /** What an entry changed, one line a field: `field: before → after`, or `field: value`. */
  function describe(entry) {
    const change = entry.change;
    if (change === null || typeof change !== 'object') return shown(change);
    if (entry.action === 'site_deleted' && 'keys' in change) {
      return `${t('keysRemoved')}: ${shown(change.keys)}`;
    }
    if (isChange(change) && typeof change.to === 'object' && change.to !== null) {
      const before = change.from || {};
      return Object.keys(change.to).filter((k) => before[k] !== change.to[k])
        .map((k) => `${k}: ${shown(before[k])} → ${shown(change.to[k])}`).join('\n');
    }
    return Object.entries(change).map(([k, v]) => (isChange(v)
      ? `${k}: ${shown(v.from)} → ${shown(v.to)}` : `${k}: ${shown(v)}`)).join('\n');
  }

  function renderAudit() {
    const body = $('audit-log').tBodies[0];
    body.replaceChildren();
    if (!auditShown.length) {
      const row = element('tr', null);
      row.append(element('td', t('noAudit'), {colspan: '5', class: 'empty'}));
      body.append(row);
      return;
    }
    for (const entry of auditShown) {
      const row = element('tr', null, {'data-action': entry.action});
      const when = element('td', null, {class: 'time', 'data-label': t('time')});
      when.append(element('time', localTime(entry.time), {datetime: entry.time, title: entry.time}));
      const known = `a_${entry.action}` in STRINGS[lang];
      row.append(
        when,
        element('td', known ? t(`a_${entry.action}`) : entry.action, {
          class: 'action', title: entry.action, 'data-label': t('action'),
        }),
        element('td', entry.site || '—', {class: 'site', 'data-label': t('site')}),
        element('td', entry.ip || '—', {class: 'who', 'data-label': t('who')}),
        element('td', describe(entry), {class: 'change', 'data-label': t('change')}),
      );
      body.append(row);
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
    const made = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
    if (text !== null) made.textContent = text;
    return made;
  }

  /** Draws at the width of its box, one unit a pixel, so that the labels keep their size. */
  function drawChart(site, list) {
    drawn = {site, list};
    const width = Math.max(280, Math.round($('chart').clientWidth) || 760);
    const height = 260;
    const margin = {top: 14, right: 18, bottom: 30, left: 66};
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
    const summary = t('summary', {
      pageviews: fmt(sum('pageviews')), visits: fmt(sum('visits')),
      first: dayLabel(first, true), last: dayLabel(last, true),
      busiest: dayLabel(busiest.date, true), busiestViews: fmt(busiest.pageviews),
      visitors: fmt(mostVisitors),
    });
    const title = t('chartLabel', {site, n}) + summary;

    const chart = svg('svg', {
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': title,
      class: n > 120 ? 'chart-svg dense' : 'chart-svg',
      width,
      height,
      'data-from': first,
      'data-to': last,
      preserveAspectRatio: 'xMidYMid meet',
    });
    chart.append(svg('title', {}, title));

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

    // About one date every 150 px: five on a desktop, two or three on a phone.
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

  // --- The history as CSV -------------------------------------------------------------------

  const DAY_TEXT = /^\d{4}-\d{2}-\d{2}$/;

  /** Every day from `from` to `to`, in requests of at most MAX_HISTORY_DAYS days. */
  async function historyDays(site, from, to) {
    const found = [];
    for (let start = from; start <= to; start = addDays(start, MAX_HISTORY_DAYS)) {
      const last = addDays(start, MAX_HISTORY_DAYS - 1);
      const end = last < to ? last : to;
      const data = await api('GET',
        `/api/v1/sites/${path(site)}/history?from=${start}&to=${end}`, {admin: false});
      found.push(...data.days);
    }
    return found;
  }

  /** The lines `analytics history --format csv` writes: a header, then one day a line. */
  function historyCsv(list) {
    const columns = ['date', ...METRICS];
    const lines = list.map((day) => columns.map((name) => day[name]).join(','));
    return `${[columns.join(','), ...lines].join('\n')}\n`;
  }

  function download(name, text) {
    const url = URL.createObjectURL(new Blob([text], {type: 'text/csv;charset=utf-8'}));
    const link = element('a', null, {href: url, download: name, hidden: ''});
    document.body.append(link);
    link.click();
    link.remove();
    // Revoked once the download has surely started.
    window.setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  // --- Events -------------------------------------------------------------------------------

  $('lang').addEventListener('change', (event) => setLang(event.target.value));

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('token');
    const button = event.target.querySelector('button');
    token = input.value.trim();
    if (!token) return;
    say(t('signingIn'), 'busy');
    run([button], async () => {
      try {
        await labelsReady;
        await loadSites();
        await loadAudit();
      } catch (err) {
        token = null;
        throw err;
      }
      input.value = '';
      $('login').hidden = true;
      $('app').hidden = false;
      $('sign-out').hidden = false;
      redraw(); // drawn while hidden, at no width
      say(t('signedIn', {count: sites.length, s: sites.length === 1 ? '' : 's'}), 'ok');
    });
  });

  $('sign-out').addEventListener('click', () => signOut(t('signedOut')));

  $('refresh').addEventListener('click', (event) => {
    run([event.target], async () => {
      await loadSites();
      await loadAudit();
      say(t('refreshed'), 'ok');
    });
  });

  $('audit-refresh').addEventListener('click', (event) => run([event.target], loadAudit));

  for (const button of document.querySelectorAll('.range button')) {
    button.addEventListener('click', () => {
      days = Number(button.dataset.days);
      for (const other of document.querySelectorAll('.range button')) {
        other.setAttribute('aria-pressed', String(other === button));
      }
      run([], loadChart);
    });
  }

  $('traffic-window').addEventListener('change', () => run([], loadTraffic));

  for (const button of document.querySelectorAll('.snippet .copy')) {
    button.addEventListener('click', () => run([button], () => copy(button.closest('.snippet'))));
  }

  $('add-site').addEventListener('click', () => {
    const form = $('add-form');
    form.reset();
    fillSiteForm(form, NEW_SITE);
    $('add-card').hidden = false;
    form.elements.id.focus();
  });

  $('add-cancel').addEventListener('click', () => {
    clearErrors($('add-form'));
    $('add-card').hidden = true;
  });

  $('add-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const body = {id: form.elements.id.value.trim(), ...siteFields(form)};
    submitting(form, async () => {
      const site = await api('POST', '/api/v1/admin/sites', {body});
      $('add-card').hidden = true;
      selected = site.id;
      await loadSites();
      renderSite(true);
      await loadAudit();
      say(t('created', {site: site.id}), 'ok');
    }, 'id');
  });

  $('edit-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const site = sites.find((s) => s.id === selected);
    const fields = siteFields(form);
    const body = {};
    for (const [name, value] of Object.entries(fields)) {
      if (JSON.stringify(value) !== JSON.stringify(site[name])) body[name] = value;
    }
    if (!Object.keys(body).length) {
      clearErrors(form);
      say(t('nothingToSave'), 'info');
      return;
    }
    submitting(form, async () => {
      await api('PATCH', `/api/v1/admin/sites/${path(site.id)}`, {body});
      await loadSites();
      renderSite(true);
      await loadAudit();
      say(t('saved', {site: site.id}), 'ok');
    });
  });

  $('delete-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const site = selected;
    const typed = $('delete-confirm').value.trim();
    // The service checks `confirm` too; its refusal is shown next to the field.
    submitting(form, async () => {
      await api('DELETE', `/api/v1/admin/sites/${path(site)}?confirm=${path(typed)}`);
      if (lastReset && lastReset.site === site) lastReset = null;
      await loadSites();
      await loadAudit();
      say(t('deleted', {site}), 'ok');
    }, 'confirm');
  });

  $('csv-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const site = selected;
    const from = form.elements.from.value;
    const to = form.elements.to.value;
    clearErrors(form);
    if (!DAY_TEXT.test(from) || !DAY_TEXT.test(to) || to < from) {
      const error = form.querySelector('.csv-error');
      error.textContent = t('csvRange');
      error.hidden = false;
      say(t('csvRange'), 'error');
      return;
    }
    run([...form.querySelectorAll('button')], async () => {
      const list = await historyDays(site, from, to);
      download(`${site}-${from}-${to}.csv`, historyCsv(list));
      say(t('csvDone', {count: fmt(list.length), site, from, to}), 'ok');
    });
  });

  $('reset-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const site = selected;
    const chosen = [...form.querySelectorAll('input[name="window"]:checked')].map((i) => i.value);
    if (!chosen.length) {
      say(t('chooseWindow'), 'error');
      return;
    }
    const names = chosen.map((w) => label(w).toLowerCase()).join(', ');
    if (!window.confirm(t('resetQuestion', {names, site}))) {
      say(t('resetCancelled'), 'info');
      return;
    }
    run([...form.querySelectorAll('button')], async () => {
      const result = await api('POST', `/api/v1/admin/sites/${path(site)}/reset`,
        {body: {windows: chosen}});
      lastReset = {site, id: result.reset_id, windows: chosen};
      form.querySelectorAll('input[name="window"]').forEach((i) => { i.checked = false; });
      renderSite(false);
      say(t('resetOk', {id: result.reset_id, names, site}), 'ok');
      await loadSites();
      await loadAudit();
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
      const names = reset.windows.map((w) => label(w).toLowerCase()).join(', ');
      say(t('undone', {id: reset.id, names, site: reset.site}), 'ok');
      await loadSites();
      await loadAudit();
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
        say(t('offsetInvalid', {metric}), 'error');
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
      await loadAudit();
      // Said last: the form shows the saved values by now.
      say(t('offsetsSaved', {
        site, pageviews: fmt(o.pageviews), visits: fmt(o.visits), visitors: fmt(o.visitors),
      }), 'ok');
    });
  });

  let resizing = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(redraw);
  });

  buildSiteForm($('add-form'));
  buildSiteForm($('edit-form'));
  translate();
  labelsReady.then(translate, (err) => fail(err));
  $('token').focus();
})();
