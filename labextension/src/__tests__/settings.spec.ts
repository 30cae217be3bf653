/**
 * The settings defaults come from the schema, the one place they are written: every field the
 * settings editor shows must reach the kernel, with the default the editor shows.
 */

import schema from '../../schema/plugin.json';
import { settingsPayload } from '../comm';
import { DEFAULT_SETTINGS, readSettings } from '../settings';

describe('settings', () => {
  it('has exactly the schema properties, with their defaults', () => {
    const defaults = Object.fromEntries(
      Object.entries(schema.properties).map(([key, property]) => [key, property.default])
    );
    expect(DEFAULT_SETTINGS).toEqual(defaults);
    // Each one is sent to the kernel.
    expect(Object.keys(settingsPayload(DEFAULT_SETTINGS))).toHaveLength(
      Object.keys(schema.properties).length
    );
  });

  it('reads composite values and falls back to the schema default for missing ones', () => {
    const values: Record<string, unknown> = { model: 'm', maxAttempts: null, writeback: false };
    expect(readSettings(key => values[key])).toEqual({
      model: 'm',
      maxAttempts: schema.properties.maxAttempts.default,
      backend: schema.properties.backend.default,
      writeback: false
    });
  });
});
