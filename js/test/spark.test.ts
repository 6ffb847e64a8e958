import { latest, sparkRuns } from '../src/spark';

describe('sparkRuns', () => {
  it('draws 100 % at the top and 0 % at the bottom, across the whole width', () => {
    expect(sparkRuns([0, 100], 60, 16)).toEqual(['0.0,15.5 60.0,0.5']);
  });

  it('breaks the line where nothing was read, and draws a lone reading as a dot', () => {
    expect(sparkRuns([50, null, 50, 50, null], 40, 11)).toEqual(['0.0,5.5 0.0,5.5', '20.0,5.5 30.0,5.5']);
  });

  it('keeps values outside 0-100 inside the box, and draws nothing of nothing', () => {
    expect(sparkRuns([-5, 250], 10, 11)).toEqual(['0.0,10.5 10.0,0.5']);
    expect(sparkRuns([null, null])).toEqual([]);
    expect(sparkRuns([])).toEqual([]);
  });
});

describe('latest', () => {
  it('is the newest reading, skipping the gaps after it', () => {
    expect(latest([1, 2, null])).toBe(2);
    expect(latest([null])).toBeNull();
  });
});
