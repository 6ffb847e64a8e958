import { ClustersModel, concerns } from '../src/model';
import { cluster, FakeApi, FakeSockets, sleep, until } from './fakes';

function setup(interval = 0.5) {
  const api = new FakeApi();
  const sockets = new FakeSockets();
  const model = new ClustersModel({ api, openSocket: sockets.factory, interval: () => interval, maxBackoff: 400 });
  return { api, sockets, model };
}

describe('ClustersModel', () => {
  it('sends nothing and opens no socket while no view shows it', async () => {
    const { api, sockets, model } = setup(0.5);
    await sleep(1200);
    expect(api.calls).toEqual([]);
    expect(sockets.opened).toHaveLength(0);
    model.dispose();
  });

  it('fetches everything when shown, and rests again when hidden', async () => {
    const { api, sockets, model } = setup(0.5);
    model.active = true;
    await until(() => api.count('clusters') >= 1 && api.count('nodes') >= 1 && api.count('jobs') >= 1);
    await until(() => model.socketOpen);
    expect(sockets.open).toBe(1);
    model.active = false;
    expect(sockets.open).toBe(0);
    expect(model.socketOpen).toBe(false);
    const before = api.calls.length;
    await sleep(1500); // three intervals
    expect(api.calls.length).toBe(before);
    model.active = true;
    await until(() => api.calls.length > before && sockets.open === 1);
    model.dispose();
  });

  it('follows its view, even through a show or hide that no message announced', async () => {
    const { api, sockets, model } = setup(0.2);
    let shown = false;
    model.follow(() => shown);
    await sleep(500);
    expect(api.calls).toEqual([]);
    shown = true; // no message: the poll's next round finds out
    await until(() => api.count('clusters') >= 1 && sockets.open === 1, 2000);
    shown = false;
    await until(() => !model.active && sockets.open === 0, 2000);
    model.dispose();
  });

  it('refreshes the cluster list each interval, and only what an event concerns in between', async () => {
    const { api, sockets, model } = setup(60); // no scheduled round during the test
    model.active = true;
    await until(() => api.count('jobs') === 1 && sockets.open === 1);
    api.calls = [];
    sockets.last.send({ type: 'event', kind: 'job_status_changed', cluster: 'a' });
    await until(() => api.count('jobs') === 1);
    await sleep(150);
    expect(api.calls).toEqual(['jobs']);
    api.calls = [];
    sockets.last.send({ type: 'event', kind: 'node_state_changed', cluster: 'a' });
    sockets.last.send({ type: 'event', kind: 'node_added', cluster: 'a' }); // one burst, one fetch
    await until(() => api.count('nodes') === 1);
    await sleep(150);
    expect(api.calls.sort()).toEqual(['clusters', 'nodes']);
    api.calls = [];
    sockets.last.send({ type: 'event', kind: 'cluster_discovered', cluster: 'b' });
    await sleep(150);
    expect(api.calls).toEqual([]);
    model.dispose();
  });

  it('asks each round for the clusters and the jobs, and for the nodes only while a node list is open', async () => {
    const { api, sockets, model } = setup(0.3);
    model.active = true;
    await until(() => api.count('nodes') === 1 && sockets.open === 1);
    api.calls = [];
    await until(() => api.count('clusters') >= 2, 3000);
    expect(api.count('jobs')).toBeGreaterThanOrEqual(1);
    expect(api.count('nodes')).toBe(0); // node changes come as events
    model.toggleNodes('a');
    await until(() => api.count('nodes') >= 2, 3000);
    model.dispose();
  });

  it('fetches the sparklines and the ended clusters when shown, then at most every 30 s', async () => {
    const { api, sockets, model } = setup(0.2);
    api.lines = { a: { start: 0, step: 60, cpu: [1, 2], gpu: [null, null], memory: [40, 41] } };
    model.active = true;
    await until(() => api.count('sparklines') === 1 && api.count('ended') === 1 && sockets.open === 1);
    expect(model.sparklines.a.cpu).toEqual([1, 2]);
    api.calls = [];
    await until(() => api.count('clusters') >= 3, 3000); // rounds of the schedule
    expect(api.count('sparklines')).toBe(0);
    expect(api.count('ended')).toBe(0);
    sockets.last.send({ type: 'event', kind: 'cluster_attached', cluster: 'b' });
    await until(() => api.count('sparklines') === 1 && api.count('ended') === 1);
    model.dispose();
  });

  it('shows the rest when the history cannot be read', async () => {
    const { api, model } = setup(60);
    api.attached = [cluster('a')];
    api.failing.add('sparklines');
    api.failing.add('ended');
    model.active = true;
    await until(() => api.count('sparklines') === 1 && api.count('clusters') === 1);
    await sleep(50);
    expect(model.clusters.map(c => c.name)).toEqual(['a']);
    expect(model.reloadError).toBe('');
    model.dispose();
  });

  it('backs off while the server does not answer, says why, and recovers', async () => {
    const { api, model } = setup(0.1);
    api.failing.add('clusters');
    model.active = true;
    await until(() => model.reloadError !== '');
    expect(model.reloadError).toBe('clusters failed: the server said no');
    await sleep(1000);
    // at 0.1 s without backoff that would be ~10 tries; the backoff doubles up to 0.4 s
    expect(api.count('clusters')).toBeLessThan(7);
    api.failing.clear();
    await until(() => model.reloadError === '', 3000);
    model.dispose();
  });

  it('opens the socket again after it drops, and with a new interval', async () => {
    let interval = 0.2;
    const api = new FakeApi();
    const sockets = new FakeSockets();
    const model = new ClustersModel({ api, openSocket: sockets.factory, interval: () => interval });
    model.active = true;
    await until(() => model.socketOpen);
    sockets.last.drop();
    expect(model.socketOpen).toBe(false);
    expect(model.reconnecting).toBe(true);
    await until(() => sockets.opened.length === 2 && model.socketOpen);
    expect(model.reconnecting).toBe(false);
    interval = 0.3;
    model.intervalChanged();
    await until(() => sockets.opened.length === 3);
    expect(sockets.last.interval).toBe(0.3);
    expect(sockets.open).toBe(1);
    model.dispose();
  });

  it('stays busy until the last of overlapping actions ends', async () => {
    const { api, model } = setup(60);
    let release = () => {};
    api.hold = new Promise<void>(resolve => (release = resolve));
    const connecting = model.connect('127.0.0.1:6379');
    const detaching = model.detach('a');
    expect(model.busy).toBe(true);
    release();
    await connecting;
    await detaching;
    expect(model.busy).toBe(false);
    model.dispose();
  });

  it('keeps the errors of a cluster apart from its own, whatever the cluster is called', async () => {
    const { api, model } = setup(60);
    api.found = [{ name: 'reload', gcs_address: null, dashboard_url: null, ray_version: null, num_nodes: 1, auth_required: false }];
    await model.discover();
    api.failing.add('connect');
    await model.attach(api.found[0]);
    expect(model.clusterErrors.get('reload')).toBe('connect failed: the server said no');
    expect(model.reloadError).toBe('');
    api.failing.add('discover');
    await model.discover();
    expect(model.discoverError).toBe('discover failed: the server said no');
    expect(model.clusterErrors.has('discover')).toBe(false);
    expect(await model.connect('  ')).toBe(false);
    expect(model.connectError).toBe('type an address first');
    model.dispose();
  });

  it('fetches the recent list when shown and when attachments change, not each round', async () => {
    const { api, sockets, model } = setup(0.2);
    api.remembered = [{ name: 'gpu', address: '10.213.4.2:6379', session_name: 's', sources: ['hosts'],
                        last_seen: '2026-12-01T14:03:07+00:00', attached: false }]; // prettier-ignore
    model.active = true;
    await until(() => model.recent.length === 1 && sockets.open === 1);
    await sleep(700); // three rounds of the schedule
    expect(api.count('recent')).toBe(1);
    sockets.last.send({ type: 'event', kind: 'cluster_detached', cluster: 'gpu' });
    await until(() => api.count('recent') === 2);
    await model.attachRecent(model.recent[0]);
    expect(api.calls).toContain('connect 10.213.4.2:6379');
    await model.forget(model.recent[0]);
    expect(api.calls).toContain('forget 10.213.4.2:6379');
    await until(() => model.recent.length === 0);
    model.dispose();
  });

  it('finds a cluster for a restored tab even before the sidebar was shown', async () => {
    const { api, model } = setup(60);
    api.attached = [cluster('lab')];
    expect((await model.fetchCluster('lab'))?.dashboard_link).toBe('/castray/dashboard/lab/cap-x/');
    expect(api.calls).toEqual(['clusters']);
    model.dispose();
  });
});

describe('concerns', () => {
  it('maps each event to the parts it changes', () => {
    expect(concerns({ type: 'hello' })).toEqual(['clusters', 'nodes', 'jobs', 'recent', 'history', 'ended']);
    expect(concerns({ type: 'event', kind: 'job_added' })).toEqual(['jobs']);
    expect(concerns({ type: 'event', kind: 'node_removed' })).toEqual(['clusters', 'nodes']);
    expect(concerns({ type: 'event', kind: 'cluster_unreachable' })).toEqual(['clusters', 'nodes', 'ended']);
    expect(concerns({ type: 'event', kind: 'cluster_detached' })).toEqual([
      'clusters',
      'nodes',
      'jobs',
      'recent',
      'history',
      'ended'
    ]);
    expect(concerns({ type: 'event', kind: 'cluster_discovered' })).toEqual([]);
  });
});
