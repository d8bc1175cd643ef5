/*! visit-analytics widget.js: one pageview, the "Thống kê truy cập" box (API.md) */
(()=>{try{
let W=window,D=document,N=navigator,L=location,
S=D.currentScript||D.querySelector('script[data-site][src*="widget.js"]'),
A=(e,k)=>e.getAttribute('data-'+k),
I=A(S,'site'),
last=L.href,ref=D.referrer,busy,sheet,B=[];
// once per page and site
if(!I||W['_va'+I])return;W['_va'+I]=1;
// F: no error may reach the host page
let Z=()=>0,F=f=>(...a)=>{try{return f(...a)}catch(e){}},
O=new URL(S.src).origin,
H=O+'/api/v1/hit',
C=A(S,'count')!='false',
R='online,today,yesterday,this_week,last_week,this_month,last_month,total'.split(','),
T={vi:'Thống kê truy cập|Đang online|Hôm nay|Hôm qua|Trong tuần|Tuần trước|Trong tháng|Tháng trước|Tất cả',
en:'Visitor statistics|Online now|Today|Yesterday|This week|Last week|This month|Last month|Total'},
V=(a,b,c,d,e)=>`{--bg:${a};--f:${b};--l:${c};--hb:${d};--hf:${e}}`,
K=V('#1f2933','#e4e7eb','#3e4c59','#0b2545','#e4e7eb'),
// .b inherits nothing from the host, which page rules reach; sizes in em
Y=':host{display:block}.b{all:initial;display:block;max-width:17.5em;border:1px solid var(--l);border-radius:.4em;overflow:hidden;background:var(--bg);color:var(--f);font-family:system-ui,"Segoe UI",Roboto,sans-serif;line-height:1.4}.b>*{font-size:.875em}.h{padding:.5em .8em;font-weight:600;background:var(--hb);color:var(--hf)}dl{margin:0;padding:.3em .8em .5em}.r{display:flex;flex-wrap:wrap;justify-content:space-between;gap:0 1em;padding:.25em 0;border-bottom:1px dashed var(--l)}.r:last-child{border:0}dd{margin:0 0 0 auto;font-weight:600;font-variant-numeric:tabular-nums}.light,.auto'+V('#fff','#1f2933','#d9e2ec','#1d4e89','#fff')+'.dark'+K+'@media(prefers-color-scheme:dark){.auto'+K+'}',
// beacon of a string (text/plain: no preflight), else fetch, else GIF
send=F(t=>{let d={site:I,url:L.href.slice(0,2048),referrer:ref.slice(0,2048),type:t},b=JSON.stringify(d);
N.sendBeacon&&N.sendBeacon(H,b)||(W.fetch?fetch(H,{method:'POST',body:b,keepalive:!0,mode:'no-cors'}).catch(Z):new Image().src=H+'.gif?'+new URLSearchParams(d))}),
show=c=>B.forEach(x=>{let m=x.m in c.windows.total?x.m:c.box_metric;
x.r.forEach((r,i)=>{let w=c.windows[r],n=r=='online'?c.online:w&&w[m];
if(typeof n=='number')x.d[i].textContent=(''+n).replace(/\B(?=(\d{3})+(?!\d))/g,x.l=='en'?',':'.')})}),
// a failed read keeps what is shown: dashes at first
load=F(()=>{if(busy||!B.length)return;busy=1;let a=new AbortController;setTimeout(()=>a.abort(),1e4);
fetch(O+'/api/v1/sites/'+I+'/counters',{signal:a.signal}).then(r=>r.ok&&r.json()).then(c=>c&&show(c)).catch(Z).then(()=>busy=0)}),
mk=(p,t,c,s)=>{let e=p.appendChild(D.createElement(t));e.className=c;s&&(e.textContent=s);return e},
put=F(e=>{let g=k=>A(e,k)||A(S,k),l=g('lang')=='en'?'en':'vi',t=T[l].split('|'),
th=/^(dark|auto)$/.test(g('theme'))?g('theme'):'light',
r=(g('rows')||'').split(',').map(s=>s.trim()).filter(s=>R.includes(s)),
h=e.attachShadow({mode:'open'}),b,q;
if(!r.length)r=[0,1,3,7].map(i=>R[i]);
// adopted sheets pass a CSP of style-src 'none'
sheet&&'adoptedStyleSheets'in h?h.adoptedStyleSheets=[sheet]:mk(h,'style','',Y);
b=mk(h,'div','b '+th);b.setAttribute('role','region');b.setAttribute('aria-label',t[0]);b.lang=l;
mk(b,'div','h',t[0]);q=mk(b,'dl','');
// every row from the start: no height change
B.push({l,m:g('metric'),r,d:r.map(s=>{let w=mk(q,'div','r');mk(w,'dt','',t[R.indexOf(s)+1]);return mk(w,'dd','','–')})})}),
go=F(()=>{try{sheet=new CSSStyleSheet;sheet.replaceSync(Y)}catch(e){sheet=0}
let e=D.querySelectorAll('[data-analytics-box]'),d;
if(e.length)e.forEach(put);else{d=D.createElement('div');S.after(d);put(d)}load()}),
tick=F(()=>{if(D.visibilityState=='visible'){C&&send('heartbeat');load()}}),
nav=F(()=>{if(L.href!=last){ref=last;last=L.href;send('pageview')}}),
P=history.pushState;
if(C){send('pageview');
// again once the read cache (2 s) has this view
setTimeout(load,2500);
if(A(S,'spa')=='true'){history.pushState=function(){let r=P.apply(this,arguments);nav();return r};W.addEventListener('popstate',nav)}}
D.readyState=='loading'?D.addEventListener('DOMContentLoaded',go):go();
setInterval(tick,Math.max(1,+A(S,'heartbeat')||60)*1e3);
D.addEventListener('visibilitychange',tick)
}catch(e){}})();
