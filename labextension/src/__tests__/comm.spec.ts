/**
 * The kernel link (comm.ts) against a scripted kernel: how the comm is found or opened, what
 * each kernel message does to the sidebar model and the notebook, in which order, and how an
 * undo is run and answered.
 *
 * The kernel, its comms and the session are stand-ins with the members KernelLink uses; the
 * notebook is the in-memory one of fakes.ts, so the real edit code runs.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { Signal } from '@lumino/signaling';

import { IKernelLinkOptions, KernelLink, undoMessage } from '../comm';
import { CodeflowModel } from '../model';
import { ICodeflowSettings } from '../tokens';
import { AskOverwrite, CellStash, writtenHash } from '../trust';
import { FakeNotebook, Json, notebookWithLinked, writeBack } from './fakes';

// -- a scripted kernel ------------------------------------------------------------------------

type CommOpenHandler = (comm: FakeComm, msg: unknown) => void;

class FakeComm {
  constructor(public targetName: string) {}
  isDisposed = false;
  /** What this side opened the comm with (when it opened it). */
  opened: Json[] = [];
  /** What this side sent. */
  sent: Json[] = [];
  onMsg: ((msg: { content: { data: Json } }) => void) | null = null;
  onClose: ((msg: unknown) => void) | null = null;
  open(data: Json): void {
    this.opened.push(data);
  }
  send(data: Json): void {
    this.sent.push(data);
  }
  /** The kernel sends `data` on this comm. */
  receive(data: Json): void {
    this.onMsg?.({ content: { data } });
  }
  /** The kernel closes the comm. */
  close(): void {
    this.onClose?.({});
  }
}

class FakeFuture {
  constructor() {
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
  onIOPub: ((msg: { header: { msg_type: string }; content: Json }) => void) | null = null;
  done: Promise<{ content: Json }>;
  resolve!: (reply: { content: Json }) => void;
  reject!: (reason: unknown) => void;
}

class FakeKernel {
  isDisposed = false;
  statusChanged = new Signal<this, string>(this);
  targets = new Map<string, CommOpenHandler>();
  /** Comms this side created. */
  created: FakeComm[] = [];
  /** What `comm_info_request` answers: the kernel's open codeflow comms. */
  existing: Record<string, { target_name: string }> = {};
  executed: Json[] = [];
  futures: FakeFuture[] = [];

  registerCommTarget(name: string, handler: CommOpenHandler): void {
    this.targets.set(name, handler);
  }
  removeCommTarget(name: string, handler: CommOpenHandler): void {
    if (this.targets.get(name) === handler) {
      this.targets.delete(name);
    }
  }
  async requestCommInfo(content: { target_name: string }): Promise<{ content: Json }> {
    const comms = Object.fromEntries(
      Object.entries(this.existing).filter(([, c]) => c.target_name === content.target_name)
    );
    return { content: { status: 'ok', comms } };
  }
  createComm(target: string): FakeComm {
    const comm = new FakeComm(target);
    this.created.push(comm);
    return comm;
  }
  requestExecute(content: Json): FakeFuture {
    this.executed.push(content);
    const future = new FakeFuture();
    this.futures.push(future);
    return future;
  }
  /** What `%load_ext codeflow_magic` does: the kernel opens a comm to the page. */
  openComm(): FakeComm {
    const handler = this.targets.get('codeflow');
    if (!handler) {
      throw new Error('no comm target registered');
    }
    const comm = new FakeComm('codeflow');
    handler(comm, {});
    return comm;
  }
}

class FakeSessionContext {
  constructor(kernel: FakeKernel | null) {
    this.session = { kernel };
  }
  session: { kernel: FakeKernel | null };
  kernelChanged = new Signal<this, { newValue: FakeKernel | null }>(this);
  connectionStatusChanged = new Signal<this, string>(this);
  changeKernel(kernel: FakeKernel | null): void {
    this.session = { kernel };
    this.kernelChanged.emit({ newValue: kernel });
  }
}

/** A sidebar model that records what the link asks of it. */
function spyModel(): CodeflowModel & {
  applyEvent: jest.Mock;
  applyRecord: jest.Mock;
  setUndo: jest.Mock;
} {
  return {
    applyEvent: jest.fn(),
    applyRecord: jest.fn(),
    setUndo: jest.fn()
  } as unknown as CodeflowModel & {
    applyEvent: jest.Mock;
    applyRecord: jest.Mock;
    setUndo: jest.Mock;
  };
}

const SETTINGS: ICodeflowSettings = {
  model: 'some-model',
  maxAttempts: 7,
  backend: 'docker',
  writeback: false
};

/** Let queued promises (comm_info, the edit queue) run. */
function flush(): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, 0));
}

function setup(
  options: {
    kernel?: FakeKernel | null;
    notebook?: FakeNotebook;
    askOverwrite?: AskOverwrite;
  } = {}
) {
  const kernel = options.kernel === undefined ? new FakeKernel() : options.kernel;
  const session = new FakeSessionContext(kernel);
  const notebook = options.notebook ?? notebookWithLinked('print(1)\n');
  const model = spyModel();
  const stash = new CellStash();
  const onWriteBack = jest.fn();
  const panel = { sessionContext: session, content: { model: notebook.model } };
  const linkOptions: IKernelLinkOptions = {
    panel: panel as unknown as NotebookPanel,
    model,
    settings: () => SETTINGS,
    version: '9.9.9',
    onWriteBack,
    stash,
    askOverwrite: options.askOverwrite
  };
  const link = new KernelLink(linkOptions);
  const connections: boolean[] = [];
  link.connectionChanged.connect((_, connected) => connections.push(connected));
  return { kernel, session, notebook, model, stash, onWriteBack, link, connections };
}

const HELLO = {
  type: 'hello',
  version: '9.9.9',
  settings: { model: 'some-model', max_attempts: 7, backend: 'docker', writeback: false }
};

// -- finding the comm -------------------------------------------------------------------------

describe('the comm', () => {
  it('answers the comm the kernel opens with hello: version and settings in Python names', async () => {
    const { kernel, link, connections } = setup();
    await flush();
    expect(link.connected).toBe(false);
    const comm = kernel!.openComm();
    expect(comm.sent).toEqual([HELLO]);
    expect(link.connected).toBe(true);
    expect(connections).toEqual([true]);
  });

  it('after a page reload, opens its own comm to a kernel that still runs codeflow', async () => {
    const kernel = new FakeKernel();
    kernel.existing = { abc: { target_name: 'codeflow' } };
    const { link } = setup({ kernel });
    await flush();
    expect(kernel.created).toHaveLength(1);
    expect(kernel.created[0].targetName).toBe('codeflow');
    expect(kernel.created[0].opened).toEqual([HELLO]);
    expect(link.connected).toBe(true);
  });

  it('opens nothing to a kernel without codeflow loaded', async () => {
    const kernel = new FakeKernel();
    kernel.existing = { other: { target_name: 'jupyter.widget' } };
    const { link } = setup({ kernel });
    await flush();
    expect(kernel.created).toHaveLength(0);
    expect(link.connected).toBe(false);
  });

  it('drops the comm when the kernel restarts or closes it, and takes the next one', async () => {
    const { kernel, link, connections } = setup();
    await flush();
    kernel!.openComm();
    kernel!.statusChanged.emit('restarting');
    expect(link.connected).toBe(false);
    const second = kernel!.openComm();
    expect(link.connected).toBe(true);
    second.close();
    expect(link.connected).toBe(false);
    expect(connections).toEqual([true, false, true, false]);
  });

  it('follows a kernel change: the old kernel loses the target, the new one is probed', async () => {
    const { kernel, session, link } = setup();
    await flush();
    kernel!.openComm();
    const next = new FakeKernel();
    next.existing = { abc: { target_name: 'codeflow' } };
    session.changeKernel(next);
    expect(kernel!.targets.size).toBe(0);
    expect(next.targets.has('codeflow')).toBe(true);
    await flush();
    expect(next.created).toHaveLength(1);
    expect(link.connected).toBe(true);
  });

  it('lets go of the kernel when disposed', async () => {
    const { kernel, session, link } = setup();
    await flush();
    kernel!.openComm();
    link.dispose();
    expect(link.isDisposed).toBe(true);
    expect(link.connected).toBe(false);
    expect(kernel!.targets.size).toBe(0);
    const next = new FakeKernel();
    session.changeKernel(next);
    expect(next.targets.size).toBe(0);
  });

  it('sends settings, next options and discard only while connected', async () => {
    const { kernel, link } = setup();
    await flush();
    expect(link.setNextOptions('req', { focus: 'optimize' })).toBe(false);
    expect(link.discard('req')).toBe(false);
    const comm = kernel!.openComm();
    link.sendSettings();
    expect(link.setNextOptions('req', { focus: 'optimize' })).toBe(true);
    expect(link.discard('req')).toBe(true);
    expect(comm.sent.slice(1)).toEqual([
      { type: 'settings', settings: HELLO.settings },
      { type: 'set_next_options', cell_id: 'req', options: { focus: 'optimize' } },
      { type: 'discard', cell_id: 'req' }
    ]);
  });
});

// -- kernel messages --------------------------------------------------------------------------

describe('kernel messages', () => {
  it('routes events and records to the model, and drops those without a cell', async () => {
    const { kernel, model } = setup();
    await flush();
    const comm = kernel!.openComm();
    const event = { kind: 'generating', attempt: 1 };
    comm.receive({ type: 'event', cell_id: 'req', event });
    comm.receive({ type: 'event', cell_id: null, event });
    comm.receive({ type: 'record', cell_id: 'req', record: { success: true } });
    comm.receive({ type: 'record', cell_id: 'req', record: 'not a record' });
    comm.receive({ type: 'no such type', cell_id: 'req' });
    expect(model.applyEvent.mock.calls).toEqual([['req', event]]);
    // The progress state the kernel reduced goes along to the model.
    const state = { last_kind: 'generating', retry: '' };
    comm.receive({ type: 'event', cell_id: 'req', event, state });
    expect(model.applyEvent.mock.calls[1]).toEqual(['req', event, state]);
    expect(model.applyRecord.mock.calls).toEqual([['req', { success: true }]]);
  });

  it('writes code back into the linked cell, stashes the old one and reports it', async () => {
    const { kernel, notebook, stash, onWriteBack } = setup();
    await flush();
    const comm = kernel!.openComm();
    comm.receive({ type: 'writeback', ...writeBack('print(2)\n'), mode: 'anything else' });
    await flush();
    expect(notebook.list.map(c => c.id)).toEqual(['req', 'gen', 'md']);
    expect(notebook.byId('gen')?.sharedModel.getSource()).toBe('print(2)\n');
    expect(stash.get('req')?.before?.source).toBe('print(1)\n');
    expect(onWriteBack.mock.calls).toEqual([['req']]);
  });

  it('does not report a write-back for a request in another notebook', async () => {
    const { kernel, onWriteBack } = setup();
    await flush();
    const comm = kernel!.openComm();
    comm.receive({ type: 'writeback', ...writeBack('print(2)\n'), cell_id: 'elsewhere' });
    comm.receive({ type: 'writeback', cell_id: 'req', code: 42 });
    await flush();
    expect(onWriteBack).not.toHaveBeenCalled();
  });

  it('applies notebook edits in order: metadata waits for a write-back that asks', async () => {
    let answer: (choice: 'replace') => void = () => undefined;
    const ask: AskOverwrite = () => new Promise(resolve => (answer = resolve));
    const notebook = notebookWithLinked('print(1)\n');
    notebook.byId('gen')?.sharedModel.setSource('mine()\n'); // an edit: the write-back asks
    const { kernel } = setup({ notebook, askOverwrite: ask });
    await flush();
    const comm = kernel!.openComm();
    comm.receive({ type: 'writeback', ...writeBack('print(2)\n') });
    comm.receive({
      type: 'metadata',
      cell_id: 'req',
      request_metadata: { request: 'print x', success: false, run_id: 'r3' }
    });
    await flush();
    // The question is open: the later message has not overtaken the write-back.
    expect((notebook.byId('req')?.getMetadata('codeflow') as Json).run_id).toBeUndefined();
    answer('replace');
    await flush();
    expect(notebook.byId('gen')?.sharedModel.getSource()).toBe('print(2)\n');
    // The last message wins, and keeps the link the write-back made.
    expect(notebook.byId('req')?.getMetadata('codeflow')).toEqual({
      request: 'print x',
      success: false,
      run_id: 'r3',
      linked_cell_id: 'gen'
    });
  });

  it('goes on with the next edit after one failed', async () => {
    const error = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const notebook = notebookWithLinked('print(1)\n');
      notebook.byId('gen')?.sharedModel.setSource('mine()\n');
      const ask: AskOverwrite = async () => {
        throw new Error('dialog failed');
      };
      const { kernel } = setup({ notebook, askOverwrite: ask });
      await flush();
      const comm = kernel!.openComm();
      comm.receive({ type: 'writeback', ...writeBack('print(2)\n') });
      comm.receive({
        type: 'metadata',
        cell_id: 'req',
        request_metadata: { request: 'print x', run_id: 'r3' }
      });
      await flush();
      expect(error).toHaveBeenCalledTimes(1);
      expect(notebook.byId('gen')?.sharedModel.getSource()).toBe('mine()\n');
      expect((notebook.byId('req')?.getMetadata('codeflow') as Json).run_id).toBe('r3');
    } finally {
      error.mockRestore();
    }
  });
});

// -- plans ------------------------------------------------------------------------------------

/** A `plan` message for `req`: one step, a markdown and a code cell. */
function planMessage(runId: string, code: string): Json {
  const base = { plan_of: 'req', step: 1, run_id: `${runId}-1`, state: 'ok', history: [] };
  return {
    type: 'plan',
    cell_id: 'req',
    cells: [
      {
        cell_type: 'markdown',
        source: '## One',
        metadata: { codeflow: { ...base, role: 'markdown' } }
      },
      {
        cell_type: 'code',
        source: code,
        outputs: [{ output_type: 'stream', name: 'stdout', text: 'ran\n' }],
        metadata: { codeflow: { ...base, role: 'code', written_hash: writtenHash(code) } }
      }
    ],
    request_metadata: { request: 'print x', success: true, run_id: runId, steps: [] }
  };
}

describe('plans', () => {
  it('writes the step cells and the request metadata, and reports it', async () => {
    const { kernel, notebook, onWriteBack } = setup();
    await flush();
    const comm = kernel!.openComm();
    comm.receive(planMessage('p1', 'one()'));
    comm.receive(planMessage('p2', 'two()'));
    comm.receive({ type: 'plan', cell_id: 'req', cells: [{ cell_type: 'raw' }] });
    await flush();
    const steps = notebook.list.filter(
      c => (c.getMetadata('codeflow') as Json | undefined)?.plan_of === 'req'
    );
    expect(steps.map(c => c.sharedModel.getSource())).toEqual(['## One', 'two()']);
    expect(steps[1].outputs.toJSON()).toEqual([
      { output_type: 'stream', name: 'stdout', text: 'ran\n' }
    ]);
    expect((notebook.byId('req')?.getMetadata('codeflow') as Json).run_id).toBe('p2');
    expect(onWriteBack.mock.calls).toEqual([['req'], ['req']]);
  });

  it('waits for an earlier write-back that asks before writing the plan', async () => {
    let answer: (choice: 'replace') => void = () => undefined;
    const ask: AskOverwrite = () => new Promise(resolve => (answer = resolve));
    const notebook = notebookWithLinked('print(1)\n');
    notebook.byId('gen')?.sharedModel.setSource('mine()\n');
    const { kernel } = setup({ notebook, askOverwrite: ask });
    await flush();
    const comm = kernel!.openComm();
    comm.receive({ type: 'writeback', ...writeBack('print(2)\n') });
    comm.receive(planMessage('p1', 'one()'));
    await flush();
    expect(notebook.list.map(c => c.id)).toEqual(['req', 'gen', 'md']);
    answer('replace');
    await flush();
    expect(notebook.list.map(c => c.sharedModel.getSource())).toEqual([
      '%%codeflow\nprint x',
      '## One',
      'one()',
      'print(2)\n',
      '# after'
    ]);
    expect((notebook.byId('req')?.getMetadata('codeflow') as Json).run_id).toBe('p1');
  });
});

// -- undo -------------------------------------------------------------------------------------

describe('undo', () => {
  it('is refused without the kernel link', async () => {
    const { link, kernel } = setup();
    await flush();
    expect(link.undo('req')).toBe(false);
    expect(kernel!.executed).toHaveLength(0);
  });

  it("runs %codeflow undo silently; the kernel's answer puts the cell back", async () => {
    const { kernel, link, notebook, model, stash } = setup();
    await flush();
    const comm = kernel!.openComm();
    comm.receive({ type: 'writeback', ...writeBack('print(2)\n') });
    await flush();

    expect(link.undo('req')).toBe(true);
    expect(kernel!.executed).toEqual([
      { code: '%codeflow undo --cell req', silent: true, store_history: false }
    ]);
    comm.receive({ type: 'undone', cell_id: 'req', ok: true, restored: ['x'], kept: ['big'] });
    kernel!.futures[0].resolve({ content: { status: 'ok' } });
    await flush();

    expect(notebook.byId('gen')?.sharedModel.getSource()).toBe('print(1)\n');
    expect((notebook.byId('req')?.getMetadata('codeflow') as Json).undone).toBe(true);
    expect(stash.get('req')).toBeUndefined();
    // One answer only: the finished request does not also report a failure.
    expect(model.setUndo.mock.calls).toEqual([
      ['req', { busy: false, ok: true, message: 'Undone; restored: x; could not restore: big' }]
    ]);
  });

  it('reports a kernel that finished without answering, with what it printed', async () => {
    const { kernel, link, notebook, model } = setup();
    await flush();
    kernel!.openComm();
    link.undo('req');
    const future = kernel!.futures[0];
    future.onIOPub?.({
      header: { msg_type: 'stream' },
      content: { name: 'stderr', text: 'UsageError: unknown option\n' }
    });
    future.onIOPub?.({ header: { msg_type: 'stream' }, content: { name: 'stdout', text: 'hi' } });
    future.resolve({ content: { status: 'ok' } });
    await flush();
    expect(model.setUndo.mock.calls).toEqual([
      ['req', { busy: false, ok: false, message: 'UsageError: unknown option' }]
    ]);
    expect(notebook.byId('gen')?.sharedModel.getSource()).toBe('print(1)\n');
    expect(notebook.byId('req')?.getMetadata('codeflow')).toEqual({ request: 'print x' });
  });

  it('reports an error reply, and a request that could not run', async () => {
    const { kernel, link, model } = setup();
    await flush();
    kernel!.openComm();
    link.undo('req');
    kernel!.futures[0].resolve({
      content: { status: 'error', ename: 'NameError', evalue: 'codeflow' }
    });
    link.undo('other');
    kernel!.futures[1].reject(new Error('kernel gone'));
    await flush();
    expect(model.setUndo.mock.calls).toEqual([
      ['req', { busy: false, ok: false, message: 'NameError: codeflow' }],
      ['other', { busy: false, ok: false, message: 'The undo could not run: Error: kernel gone' }]
    ]);
  });

  it('refuses a cell id that is not one, without running anything', async () => {
    const { kernel, link, model } = setup();
    await flush();
    kernel!.openComm();
    expect(link.undo('x; import os')).toBe(true);
    await flush();
    expect(kernel!.executed).toHaveLength(0);
    expect(model.setUndo).toHaveBeenCalledTimes(1);
    expect(model.setUndo.mock.calls[0][1]).toMatchObject({ busy: false, ok: false });
  });

  it('words the answer for the sidebar', () => {
    const reply = { cell_id: 'r', ok: true, restored: [], removed: [], kept: [], message: '' };
    expect(undoMessage(reply)).toBe('Undone');
    expect(undoMessage({ ...reply, removed: ['y'] })).toBe('Undone; removed: y');
    expect(undoMessage({ ...reply, ok: false })).toBe('The undo failed.');
    expect(undoMessage({ ...reply, message: 'Nothing to undo' })).toBe('Nothing to undo');
  });
});
