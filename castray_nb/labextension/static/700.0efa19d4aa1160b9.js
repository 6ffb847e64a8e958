"use strict";(self.rspackChunkcastray_nb=self.rspackChunkcastray_nb||[]).push([[700],{646(r,a,e){var t=e(601),o=e.n(t),n=e(314),s=(e.n(n))()(o());s.push([r.id,`/* castray_nb's sidebar: JupyterLab's CSS variables only, so it follows the theme. */
.castray-sidebar {
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1);
  display: flex;
  flex-direction: column;
  overflow: auto;
  padding: 8px;
  box-sizing: border-box;
  min-width: 220px;
}

.castray-header,
.castray-connect,
.castray-card-title,
.castray-actions {
  display: flex;
  align-items: center;
  gap: 4px;
  flex-wrap: wrap;
}

.castray-header {
  justify-content: space-between;
  margin-bottom: 6px;
}

.castray-title {
  font-size: var(--jp-ui-font-size2);
  font-weight: 600;
  text-transform: uppercase;
  color: var(--jp-ui-font-color1);
}

.castray-address {
  flex: 1 1 120px;
  min-width: 0;
}

.castray-button {
  font-size: var(--jp-ui-font-size0);
  padding: 2px 6px;
  border: var(--jp-border-width) solid var(--jp-border-color1);
  border-radius: var(--jp-border-radius);
  background: var(--jp-layout-color2);
  color: var(--jp-ui-font-color1);
  cursor: pointer;
  min-height: 22px;
}

.castray-button:hover {
  background: var(--jp-layout-color3);
}

.castray-button:disabled {
  color: var(--jp-ui-font-color3);
  cursor: default;
}

.castray-status,
.castray-muted,
.castray-empty {
  color: var(--jp-ui-font-color2);
}

.castray-status {
  font-size: var(--jp-ui-font-size0);
  margin: 4px 0;
}

.castray-error {
  color: var(--jp-error-color1);
  font-size: var(--jp-ui-font-size0);
  margin: 2px 0;
  word-break: break-word;
}

.castray-error:empty {
  display: none;
}

.castray-section {
  margin: 10px 0 4px;
  font-weight: 600;
  color: var(--jp-ui-font-color2);
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
}

.castray-card,
.castray-discovered,
.castray-recent,
.castray-ended {
  border: var(--jp-border-width) solid var(--jp-border-color2);
  border-radius: var(--jp-border-radius);
  background: var(--jp-layout-color0);
  padding: 6px;
  margin: 4px 0;
}

.castray-line {
  margin: 2px 0;
  overflow-wrap: anywhere; /* long addresses break where they must; words stay whole */
}

/* Sparklines: the theme's colours, so the dark theme recolours them with no redraw. */
/* Three columns, each line above its label: in a narrow sidebar a row of line-and-label
   pairs wrapped, leaving "memory" alone on a second line. */
.castray-sparks {
  display: grid;
  grid-template-columns: repeat(3, minmax(0, 1fr));
  gap: 2px 6px;
  font-size: var(--jp-ui-font-size0);
  color: var(--jp-ui-font-color2);
}

.castray-spark {
  display: flex;
  flex-direction: column;
  align-items: flex-start;
  min-width: 0;
  white-space: nowrap;
}

.castray-spark-base {
  stroke: var(--jp-border-color2);
  stroke-width: 1;
}

.castray-spark-line {
  fill: none;
  stroke-width: 1.5;
  stroke-linecap: round;
  stroke-linejoin: round;
}

.castray-spark-cpu .castray-spark-line {
  stroke: var(--jp-brand-color1);
}

.castray-spark-gpu .castray-spark-line {
  stroke: var(--jp-warn-color1);
}

.castray-spark-memory .castray-spark-line {
  stroke: var(--jp-success-color1);
}

.castray-dot {
  display: inline-block;
  width: 8px;
  height: 8px;
  border-radius: 50%;
  background: var(--jp-ui-font-color3);
}

.castray-dot.castray-reachable {
  background: var(--jp-success-color1);
}

.castray-dot.castray-unreachable {
  background: var(--jp-error-color1);
}

.castray-actions {
  margin-top: 4px;
}

.castray-nodes-wrap {
  overflow-x: auto;
  max-width: 100%;
}

.castray-nodes {
  border-collapse: collapse;
  width: 100%;
  margin-top: 6px;
  font-size: var(--jp-ui-font-size0);
}

.castray-nodes th,
.castray-nodes td {
  text-align: left;
  padding: 1px 4px 1px 0;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color3);
}

.castray-state.castray-alive {
  color: var(--jp-success-color1);
}

.castray-state.castray-dead,
.castray-state.castray-unreachable {
  color: var(--jp-error-color1);
}

.castray-dashboard-frame iframe {
  background: var(--jp-layout-color0);
}
`,""]),e.d(a,{},{A:s})},314(r){r.exports=function(r){var a=[];return a.toString=function(){return this.map(function(a){var e="",t=void 0!==a[5];return a[4]&&(e+="@supports (".concat(a[4],") {")),a[2]&&(e+="@media ".concat(a[2]," {")),t&&(e+="@layer".concat(a[5].length>0?" ".concat(a[5]):""," {")),e+=r(a),t&&(e+="}"),a[2]&&(e+="}"),a[4]&&(e+="}"),e}).join("")},a.i=function(r,e,t,o,n){"string"==typeof r&&(r=[[null,r,void 0]]);var s={};if(t)for(var c=0;c<this.length;c++){var i=this[c][0];null!=i&&(s[i]=!0)}for(var l=0;l<r.length;l++){var p=[].concat(r[l]);t&&s[p[0]]||(void 0!==n&&(void 0===p[5]||(p[1]="@layer".concat(p[5].length>0?" ".concat(p[5]):""," {").concat(p[1],"}")),p[5]=n),e&&(p[2]&&(p[1]="@media ".concat(p[2]," {").concat(p[1],"}")),p[2]=e),o&&(p[4]?(p[1]="@supports (".concat(p[4],") {").concat(p[1],"}"),p[4]=o):p[4]="".concat(o)),a.push(p))}},a}},601(r){r.exports=function(r){return r[1]}},72(r){var a=[];function e(r){for(var e=-1,t=0;t<a.length;t++)if(a[t].identifier===r){e=t;break}return e}function t(r,t){for(var o={},n=[],s=0;s<r.length;s++){var c=r[s],i=t.base?c[0]+t.base:c[0],l=o[i]||0,p="".concat(i," ").concat(l);o[i]=l+1;var d=e(p),u={css:c[1],media:c[2],sourceMap:c[3],supports:c[4],layer:c[5]};if(-1!==d)a[d].references++,a[d].updater(u);else{var f=function(r,a){var e=a.domAPI(a);return e.update(r),function(a){a?(a.css!==r.css||a.media!==r.media||a.sourceMap!==r.sourceMap||a.supports!==r.supports||a.layer!==r.layer)&&e.update(r=a):e.remove()}}(u,t);t.byIndex=s,a.splice(s,0,{identifier:p,updater:f,references:1})}n.push(p)}return n}r.exports=function(r,o){var n=t(r=r||[],o=o||{});return function(r){r=r||[];for(var s=0;s<n.length;s++){var c=e(n[s]);a[c].references--}for(var i=t(r,o),l=0;l<n.length;l++){var p=e(n[l]);0===a[p].references&&(a[p].updater(),a.splice(p,1))}n=i}}},659(r){var a={};r.exports=function(r,e){var t=function(r){if(void 0===a[r]){var e=document.querySelector(r);if(window.HTMLIFrameElement&&e instanceof window.HTMLIFrameElement)try{e=e.contentDocument.head}catch(r){e=null}a[r]=e}return a[r]}(r);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(e)}},540(r){r.exports=function(r){var a=document.createElement("style");return r.setAttributes(a,r.attributes),r.insert(a,r.options),a}},56(r,a,e){r.exports=function(r){var a=e.nc;a&&r.setAttribute("nonce",a)}},825(r){r.exports=function(r){if("u"<typeof document)return{update:function(){},remove:function(){}};var a=r.insertStyleElement(r);return{update:function(e){var t,o,n;t="",e.supports&&(t+="@supports (".concat(e.supports,") {")),e.media&&(t+="@media ".concat(e.media," {")),(o=void 0!==e.layer)&&(t+="@layer".concat(e.layer.length>0?" ".concat(e.layer):""," {")),t+=e.css,o&&(t+="}"),e.media&&(t+="}"),e.supports&&(t+="}"),(n=e.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),r.styleTagTransform(t,a,r.options)},remove:function(){var r;null===(r=a).parentNode||r.parentNode.removeChild(r)}}}},113(r){r.exports=function(r,a){if(a.styleSheet)a.styleSheet.cssText=r;else{for(;a.firstChild;)a.removeChild(a.firstChild);a.appendChild(document.createTextNode(r))}}},959(r,a,e){var t=e(72),o=e.n(t),n=e(825),s=e.n(n),c=e(659),i=e.n(c),l=e(56),p=e.n(l),d=e(540),u=e.n(d),f=e(113),y=e.n(f),v=e(646),m={};m.styleTagTransform=y(),m.setAttributes=p(),m.insert=i().bind(null,"head"),m.domAPI=s(),m.insertStyleElement=u(),o()(v.A,m),v.A&&v.A.locals&&v.A.locals}}]);