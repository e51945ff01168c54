/* SPDX-License-Identifier: Apache-2.0 */
/* PLACEHOLDER: being written */
int main(void);
int main(void) { return 77; }
