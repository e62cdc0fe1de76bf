import type { Screen } from "./context";
import { apiKeysScreen } from "./views/apiKeys";
import { askScreen } from "./views/ask";
import { documentsScreen } from "./views/documents";
import { membersScreen } from "./views/members";

// The navigation, in order. The first one the person may see is the landing screen after sign-in.
export const SCREENS: Screen[] = [documentsScreen, askScreen, membersScreen, apiKeysScreen];
