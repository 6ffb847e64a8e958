"use strict";(self.rspackChunkcastray_nb=self.rspackChunkcastray_nb||[]).push([[700],{646(r,a,t){var e=t(601),o=t.n(e),n=t(314),s=(t.n(n))()(o());s.push([r.id,`/* castray_nb's sidebar: JupyterLab's CSS variables only, so it follows the theme. */
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
.castray-recent {
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
`,""]),t.d(a,{},{A:s})},314(r){r.exports=function(r){var a=[];return a.toString=function(){return this.map(function(a){var t="",e=void 0!==a[5];return a[4]&&(t+="@supports (".concat(a[4],") {")),a[2]&&(t+="@media ".concat(a[2]," {")),e&&(t+="@layer".concat(a[5].length>0?" ".concat(a[5]):""," {")),t+=r(a),e&&(t+="}"),a[2]&&(t+="}"),a[4]&&(t+="}"),t}).join("")},a.i=function(r,t,e,o,n){"string"==typeof r&&(r=[[null,r,void 0]]);var s={};if(e)for(var c=0;c<this.length;c++){var i=this[c][0];null!=i&&(s[i]=!0)}for(var p=0;p<r.length;p++){var d=[].concat(r[p]);e&&s[d[0]]||(void 0!==n&&(void 0===d[5]||(d[1]="@layer".concat(d[5].length>0?" ".concat(d[5]):""," {").concat(d[1],"}")),d[5]=n),t&&(d[2]&&(d[1]="@media ".concat(d[2]," {").concat(d[1],"}")),d[2]=t),o&&(d[4]?(d[1]="@supports (".concat(d[4],") {").concat(d[1],"}"),d[4]=o):d[4]="".concat(o)),a.push(d))}},a}},601(r){r.exports=function(r){return r[1]}},72(r){var a=[];function t(r){for(var t=-1,e=0;e<a.length;e++)if(a[e].identifier===r){t=e;break}return t}function e(r,e){for(var o={},n=[],s=0;s<r.length;s++){var c=r[s],i=e.base?c[0]+e.base:c[0],p=o[i]||0,d="".concat(i," ").concat(p);o[i]=p+1;var l=t(d),u={css:c[1],media:c[2],sourceMap:c[3],supports:c[4],layer:c[5]};if(-1!==l)a[l].references++,a[l].updater(u);else{var f=function(r,a){var t=a.domAPI(a);return t.update(r),function(a){a?(a.css!==r.css||a.media!==r.media||a.sourceMap!==r.sourceMap||a.supports!==r.supports||a.layer!==r.layer)&&t.update(r=a):t.remove()}}(u,e);e.byIndex=s,a.splice(s,0,{identifier:d,updater:f,references:1})}n.push(d)}return n}r.exports=function(r,o){var n=e(r=r||[],o=o||{});return function(r){r=r||[];for(var s=0;s<n.length;s++){var c=t(n[s]);a[c].references--}for(var i=e(r,o),p=0;p<n.length;p++){var d=t(n[p]);0===a[d].references&&(a[d].updater(),a.splice(d,1))}n=i}}},659(r){var a={};r.exports=function(r,t){var e=function(r){if(void 0===a[r]){var t=document.querySelector(r);if(window.HTMLIFrameElement&&t instanceof window.HTMLIFrameElement)try{t=t.contentDocument.head}catch(r){t=null}a[r]=t}return a[r]}(r);if(!e)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");e.appendChild(t)}},540(r){r.exports=function(r){var a=document.createElement("style");return r.setAttributes(a,r.attributes),r.insert(a,r.options),a}},56(r,a,t){r.exports=function(r){var a=t.nc;a&&r.setAttribute("nonce",a)}},825(r){r.exports=function(r){if("u"<typeof document)return{update:function(){},remove:function(){}};var a=r.insertStyleElement(r);return{update:function(t){var e,o,n;e="",t.supports&&(e+="@supports (".concat(t.supports,") {")),t.media&&(e+="@media ".concat(t.media," {")),(o=void 0!==t.layer)&&(e+="@layer".concat(t.layer.length>0?" ".concat(t.layer):""," {")),e+=t.css,o&&(e+="}"),t.media&&(e+="}"),t.supports&&(e+="}"),(n=t.sourceMap)&&"u">typeof btoa&&(e+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),r.styleTagTransform(e,a,r.options)},remove:function(){var r;null===(r=a).parentNode||r.parentNode.removeChild(r)}}}},113(r){r.exports=function(r,a){if(a.styleSheet)a.styleSheet.cssText=r;else{for(;a.firstChild;)a.removeChild(a.firstChild);a.appendChild(document.createTextNode(r))}}},959(r,a,t){var e=t(72),o=t.n(e),n=t(825),s=t.n(n),c=t(659),i=t.n(c),p=t(56),d=t.n(p),l=t(540),u=t.n(l),f=t(113),y=t.n(f),v=t(646),b={};b.styleTagTransform=y(),b.setAttributes=d(),b.insert=i().bind(null,"head"),b.domAPI=s(),b.insertStyleElement=u(),o()(v.A,b),v.A&&v.A.locals&&v.A.locals}}]);