/**
 * UI tests of the views beyond the inspector, one file per view (wizard,
 * compare, experiment, …); each exports its list and is spread in here.
 */
import type { UiTest } from '../uiHelpers';
import { wizardUiTests } from './wizard';

export const viewUiTests: UiTest[] = [...wizardUiTests];
