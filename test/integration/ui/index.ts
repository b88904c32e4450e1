/**
 * UI tests of the views beyond the inspector, one file per view (wizard,
 * compare, experiment, …); each exports its list and is spread in here.
 */
import type { UiTest } from '../uiHelpers';
import { compareUiTests } from './compare';
import { sensitivityUiTests } from './sensitivity';
import { experimentUiTests } from './experiment';
import { wizardUiTests } from './wizard';
import { activationsUiTests } from './activations';

export const viewUiTests: UiTest[] = [...wizardUiTests, ...compareUiTests, ...sensitivityUiTests, ...experimentUiTests, ...activationsUiTests];
